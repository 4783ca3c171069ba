package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyferry/keyferry/internal/cikind"
)

// Config configures a Verifier. Every field is optional.
type Config struct {
	// HTTPClient is used for discovery and JWKS fetches (default: a
	// client with a 10 s timeout). Issuers with a CACert get a copy whose
	// transport also trusts that CA.
	HTTPClient *http.Client
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Logger receives key-fetch events (default: discard).
	Logger *slog.Logger
	// OnJWKSFetch, if set, is called after every key fetch attempt with the
	// issuer's name and the fetch error (nil on success); a metrics hook.
	// It runs on the fetch's goroutine, before waiting callers resume, and
	// must not block.
	OnJWKSFetch func(issuer string, err error)
	// ReplayCacheSize bounds the number of (iss, jti) pairs tracked for
	// issuers with ReplayMaxUses > 0 (default DefaultReplayCacheSize).
	ReplayCacheSize int
}

// Verifier verifies tokens against a set of trusted issuers. It is safe
// for concurrent use; SetIssuers may be called while tokens are verified.
type Verifier struct {
	client  *http.Client
	now     func() time.Time
	logger  *slog.Logger
	onFetch func(string, error)
	replay  *replayCache

	mu  sync.Mutex // serialises SetIssuers
	set atomic.Pointer[issuerSet]

	// life is the context of background key fetches; end cancels it.
	life context.Context
	end  context.CancelFunc
}

// issuerSet is an immutable snapshot of the configured issuers.
type issuerSet struct {
	byURL map[string]*issuerState
	list  []Issuer
}

// issuerState is one issuer's configuration, prepared for the hot path.
type issuerState struct {
	cfg       Issuer // with defaults applied
	kind      *cikind.Kind
	algs      algSet
	joseAlgs  []jose.SignatureAlgorithm
	audiences map[string]struct{}
	leeway    float64 // seconds
	maxAge    float64 // seconds
	cooldown  time.Duration
	keys      *keySource
}

// NewVerifier returns a Verifier with no issuers; call SetIssuers.
func NewVerifier(cfg Config) *Verifier {
	v := &Verifier{
		client:  cfg.HTTPClient,
		now:     cfg.Now,
		logger:  cfg.Logger,
		onFetch: cfg.OnJWKSFetch,
		replay:  newReplayCache(cfg.ReplayCacheSize),
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = slog.New(slog.DiscardHandler)
	}
	v.set.Store(&issuerSet{byURL: map[string]*issuerState{}})
	v.life, v.end = context.WithCancel(context.Background())
	return v
}

// Run ties the verifier's background work — key fetches, which run on
// their own goroutines and outlive the request that started them — to a
// task group: it returns when ctx is done, after cancelling the fetches
// then in flight (and any started later). Without Run they run to their
// own deadline.
func (v *Verifier) Run(ctx context.Context) error {
	<-ctx.Done()
	v.end()
	return nil
}

// lifetime is the context of background key fetches.
func (v *Verifier) lifetime() context.Context { return v.life }

// SetIssuers validates every issuer, then atomically replaces the trusted
// set. On error nothing changes. Issuers whose key source (name, url,
// jwks_url, public_keys, ca_cert) is unchanged keep their cached keys. No
// network I/O happens here: keys are fetched on first use.
func (v *Verifier) SetIssuers(issuers []Issuer) error {
	var errs []error
	names := make(map[string]int, len(issuers))
	urls := make(map[string]int, len(issuers))
	for i, is := range issuers {
		if err := ValidateIssuer(is); err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
		}
		if j, dup := names[is.Name]; dup {
			errs = append(errs, fmt.Errorf("issuers[%d]: name: %q is already used by issuers[%d]", i, is.Name, j))
		} else {
			names[is.Name] = i
		}
		if j, dup := urls[is.URL]; dup {
			errs = append(errs, fmt.Errorf("issuers[%d]: url: %q is already used by issuers[%d]", i, is.URL, j))
		} else {
			urls[is.URL] = i
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	reuse := map[string]*keySource{}
	for _, st := range v.set.Load().byURL {
		reuse[st.keys.id] = st.keys
	}
	next := &issuerSet{byURL: make(map[string]*issuerState, len(issuers)), list: make([]Issuer, 0, len(issuers))}
	for i, is := range issuers {
		cfg := withDefaults(is)
		st := &issuerState{
			cfg:       cfg,
			kind:      cikind.Of(string(cfg.Kind)),
			audiences: make(map[string]struct{}, len(cfg.Audiences)),
			leeway:    cfg.Leeway.D().Seconds(),
			maxAge:    cfg.MaxTokenAge.D().Seconds(),
			cooldown:  cfg.JWKSRefreshCooldown.D(),
		}
		for _, a := range cfg.Algorithms {
			st.algs |= algBit(a)
			st.joseAlgs = append(st.joseAlgs, jose.SignatureAlgorithm(a))
		}
		for _, a := range cfg.Audiences {
			st.audiences[a] = struct{}{}
		}
		if ks, ok := reuse[sourceID(cfg)]; ok {
			st.keys = ks
		} else {
			ks, err := newKeySource(cfg, v)
			if err != nil { // validated above, so this is unexpected
				return fmt.Errorf("issuers[%d]: %w", i, err)
			}
			st.keys = ks
		}
		next.byURL[cfg.URL] = st
		next.list = append(next.list, cfg)
	}
	v.set.Store(next)
	return nil
}

// Issuers returns the configured issuers, with defaults applied.
func (v *Verifier) Issuers() []Issuer {
	list := v.set.Load().list
	out := make([]Issuer, len(list))
	for i, is := range list {
		out[i] = withDefaults(is) // copies the slices
	}
	return out
}
