package identity

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of key fetching.
const (
	fetchTimeout    = 10 * time.Second
	maxFetchBody    = 1 << 20 // 1 MiB
	maxRedirects    = 5
	defaultCacheTTL = time.Hour
	minCacheTTL     = 5 * time.Minute
	maxCacheTTL     = 24 * time.Hour
	discoveryPath   = "/.well-known/openid-configuration"
)

// Log attribute keys.
const (
	logKeyIssuer  = "issuer"
	logKeyError   = "err"
	logKeyKeys    = "keys"
	logKeySkipped = "skipped"
)

// errFetchBackoff is returned instead of fetching when the previous fetch
// failed less than a cooldown ago.
var errFetchBackoff = errors.New("previous key fetch failed; waiting for the refresh cooldown before retrying")

// keySource holds one issuer's verification keys: a static set, or a cache
// of keys fetched from a JWKS URL (directly or through OIDC discovery).
//
// Reads of the cached set are lock-free. Fetches are single-flight: one at
// a time per source, run on their own goroutine with a 10 s deadline that
// does not depend on any caller's context, so a caller giving up does not
// fail the fetch for everyone else. Their context is the verifier's
// lifetime (Verifier.Run's), so a shutdown cancels them.
type keySource struct {
	id        string // equal ids mean the same key source (cache reusable)
	name      string
	issuerURL string
	jwksURL   string // "" means OIDC discovery
	static    bool
	client    *http.Client
	now       func() time.Time
	logger    *slog.Logger
	onFetch   func(issuer string, err error)
	lifetime  func() context.Context // the verifier's

	keys atomic.Pointer[keySet]

	mu        sync.Mutex
	inflight  *fetchCall
	lastFetch time.Time // start of the last fetch, for rate limiting
	lastErr   error     // error of the last fetch, nil if it succeeded
}

type fetchCall struct {
	done chan struct{}
	keys *keySet
	err  error
}

// sourceID identifies an issuer's key source: two configurations with
// the same id can share a key cache.
func sourceID(is Issuer) string {
	b, _ := json.Marshal([]any{is.Name, is.URL, is.JWKSURL, is.PublicKeys, is.CACert})
	return string(b)
}

// newKeySource builds the key source of a validated issuer.
func newKeySource(is Issuer, v *Verifier) (*keySource, error) {
	s := &keySource{
		id:        sourceID(is),
		name:      is.Name,
		issuerURL: is.URL,
		jwksURL:   is.JWKSURL,
		now:       v.now,
		logger:    v.logger,
		onFetch:   v.onFetch,
		lifetime:  v.lifetime,
	}
	if len(is.PublicKeys) > 0 {
		keys, err := parseStaticKeys(is.PublicKeys)
		if err != nil {
			return nil, err
		}
		s.static = true
		s.keys.Store(&keySet{keys: keys})
		return s, nil
	}
	client, err := fetchClient(v.client, is.CACert)
	if err != nil {
		return nil, err
	}
	s.client = client
	return s, nil
}

// fetchClient derives the client used for one issuer's fetches from base:
// redirects must keep to the https/loopback rule, and caPEM, when set, is
// trusted in addition to the system roots.
func fetchClient(base *http.Client, caPEM string) (*http.Client, error) {
	c := *base
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return checkFetchURL(req.URL.String())
	}
	if caPEM == "" {
		return &c, nil
	}
	pool, err := certPoolFromPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("ca_cert: %w", err)
	}
	var tr *http.Transport
	switch t := base.Transport.(type) {
	case *http.Transport:
		tr = t.Clone()
	default:
		// A custom RoundTripper cannot be given extra roots; an issuer
		// with its own CA gets a standard transport instead.
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = pool
	c.Transport = tr
	return &c, nil
}

// current returns the cached keys, starting a background refresh when
// they are older than their TTL. Stale keys keep being served meanwhile,
// and keep working if the refresh fails.
func (s *keySource) current(now time.Time, cooldown time.Duration) *keySet {
	ks := s.keys.Load()
	if ks == nil || s.static || now.Before(ks.expiresAt) {
		return ks
	}
	s.mu.Lock()
	if s.inflight == nil && s.mayFetch(now, cooldown) {
		s.startLocked(now)
	}
	s.mu.Unlock()
	return ks
}

// initial fetches the first key set, waiting for it. After a failed
// fetch, it fails fast until the cooldown has passed.
func (s *keySource) initial(ctx context.Context, now time.Time, cooldown time.Duration) (*keySet, error) {
	s.mu.Lock()
	c := s.inflight
	if c == nil {
		if !s.mayFetch(now, cooldown) {
			err := s.lastErr
			s.mu.Unlock()
			if ks := s.keys.Load(); ks != nil { // a racing fetch succeeded
				return ks, nil
			}
			if err == nil {
				return nil, errFetchBackoff
			}
			return nil, fmt.Errorf("%w: %w", errFetchBackoff, err)
		}
		c = s.startLocked(now)
	}
	s.mu.Unlock()
	return c.wait(ctx)
}

// refetchForUnknownKey fetches the keys again because a token named a key
// the cache does not have. It joins a fetch in flight; otherwise it
// fetches at most once per cooldown, and returns nil, nil when the
// cooldown forbids a fetch.
func (s *keySource) refetchForUnknownKey(ctx context.Context, now time.Time, cooldown time.Duration) (*keySet, error) {
	if s.static {
		return nil, nil
	}
	s.mu.Lock()
	c := s.inflight
	if c == nil {
		if !s.mayFetch(now, cooldown) {
			s.mu.Unlock()
			return nil, nil
		}
		c = s.startLocked(now)
	}
	s.mu.Unlock()
	return c.wait(ctx)
}

// mayFetch reports whether the cooldown since the last fetch has passed.
// s.mu must be held.
func (s *keySource) mayFetch(now time.Time, cooldown time.Duration) bool {
	return s.lastFetch.IsZero() || now.Sub(s.lastFetch) >= cooldown
}

// startLocked starts a fetch on its own goroutine. s.mu must be held and
// no fetch may be in flight.
func (s *keySource) startLocked(now time.Time) *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	s.inflight = c
	s.lastFetch = now
	go s.run(c)
	return c
}

func (s *keySource) run(c *fetchCall) {
	ctx, cancel := context.WithTimeout(s.lifetime(), fetchTimeout)
	defer cancel()
	keys, err := s.fetch(ctx)

	s.mu.Lock()
	if err == nil {
		s.keys.Store(keys)
	}
	s.lastErr = err
	s.inflight = nil
	s.mu.Unlock()

	if err != nil {
		s.logger.Warn("jwks fetch failed", logKeyIssuer, s.name, logKeyError, err.Error())
	} else {
		s.logger.Debug("jwks fetched", logKeyIssuer, s.name, logKeyKeys, len(keys.keys))
	}
	if s.onFetch != nil {
		s.onFetch(s.name, err)
	}
	c.keys, c.err = keys, err
	close(c.done)
}

func (c *fetchCall) wait(ctx context.Context) (*keySet, error) {
	select {
	case <-c.done:
		return c.keys, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch retrieves the issuer's JWKS, through discovery when no JWKS URL
// is configured.
func (s *keySource) fetch(ctx context.Context) (*keySet, error) {
	jwksURL := s.jwksURL
	if jwksURL == "" {
		u, err := s.discover(ctx)
		if err != nil {
			return nil, err
		}
		jwksURL = u
	}
	body, hdr, err := s.get(ctx, jwksURL)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		s.logger.Debug("jwks keys skipped", logKeyIssuer, s.name, logKeySkipped, errors.Join(skipped...).Error())
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks has no usable signing key")
	}
	now := s.now()
	return &keySet{keys: keys, fetchedAt: now, expiresAt: now.Add(cacheTTL(hdr.Get("Cache-Control")))}, nil
}

// discover reads the OIDC discovery document and returns its jwks_uri.
// The document's issuer must equal the configured issuer URL exactly.
func (s *keySource) discover(ctx context.Context) (string, error) {
	body, _, err := s.get(ctx, strings.TrimSuffix(s.issuerURL, "/")+discoveryPath)
	if err != nil {
		return "", fmt.Errorf("oidc discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("oidc discovery: parse: %w", err)
	}
	if doc.Issuer != s.issuerURL {
		return "", fmt.Errorf("oidc discovery: document issuer %q does not equal the configured url %q", doc.Issuer, s.issuerURL)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("oidc discovery: no jwks_uri")
	}
	if err := checkFetchURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("oidc discovery: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

// get fetches url with a body limit of maxFetchBody.
func (s *keySource) get(ctx context.Context, url string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, nil, fmt.Errorf("%s: status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: read body: %w", url, err)
	}
	if len(body) > maxFetchBody {
		return nil, nil, fmt.Errorf("%s: body larger than %d bytes", url, maxFetchBody)
	}
	return body, resp.Header, nil
}

// cacheTTL derives the key cache lifetime from a Cache-Control header:
// max-age clamped to [5m, 24h], 1h when absent.
func cacheTTL(cacheControl string) time.Duration {
	for _, d := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return minCacheTTL
		case "max-age":
			secs, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
			if err != nil {
				return defaultCacheTTL
			}
			if secs > int64(maxCacheTTL/time.Second) {
				return maxCacheTTL
			}
			return min(max(time.Duration(secs)*time.Second, minCacheTTL), maxCacheTTL)
		}
	}
	return defaultCacheTTL
}
