package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultReplayCacheSize is the default bound on tracked jti values.
const DefaultReplayCacheSize = 1 << 20

const (
	replayShards        = 16
	replaySweepInterval = time.Minute
)

// replayKey is a 128-bit digest of iss and jti: fixed-size keys keep the
// cache's memory bounded whatever the claims' lengths.
type replayKey [16]byte

type replayEntry struct {
	expires time.Time
	uses    int
}

type replayShard struct {
	mu        sync.Mutex
	entries   map[replayKey]replayEntry
	lastSweep time.Time
}

// replayCache counts the uses of each (iss, jti) until the token can no
// longer be valid. It is sharded to keep lock hold times short, and
// bounded: when a shard is full even after dropping expired entries, new
// tokens are refused (fail closed) rather than evicting live entries,
// which would let those tokens be replayed.
type replayCache struct {
	shards   []replayShard
	perShard int
}

func newReplayCache(size int) *replayCache {
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	n := replayShards
	if size < 64*replayShards {
		n = 1
	}
	c := &replayCache{shards: make([]replayShard, n), perShard: (size + n - 1) / n}
	for i := range c.shards {
		c.shards[i].entries = make(map[replayKey]replayEntry)
	}
	return c
}

type replayResult int

const (
	replayOK replayResult = iota
	replayExceeded
	replayFull
)

// use records one use of (iss, jti), valid until expires, and reports
// whether it is within maxUses.
func (c *replayCache) use(iss, jti string, expires, now time.Time, maxUses int) replayResult {
	h := sha256.New()
	h.Write([]byte(iss))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var sum [sha256.Size]byte
	var key replayKey
	copy(key[:], h.Sum(sum[:0]))

	s := &c.shards[int(key[0])%len(c.shards)]
	s.mu.Lock()
	defer s.mu.Unlock()

	if e, ok := s.entries[key]; ok && now.Before(e.expires) {
		if e.uses >= maxUses {
			return replayExceeded
		}
		e.uses++
		s.entries[key] = e
		return replayOK
	}
	if len(s.entries) >= c.perShard || now.Sub(s.lastSweep) >= replaySweepInterval {
		for k, e := range s.entries {
			if !now.Before(e.expires) {
				delete(s.entries, k)
			}
		}
		s.lastSweep = now
	}
	if len(s.entries) >= c.perShard {
		return replayFull
	}
	s.entries[key] = replayEntry{expires: expires, uses: 1}
	return replayOK
}
