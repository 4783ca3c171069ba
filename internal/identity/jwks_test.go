package identity_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

// watched is an IdP serving rsa1.pem and a verifier of its tokens on a
// clock the test moves, whose JWKS fetches are logged.
type watched struct {
	idp *fakeIdP
	clk *testutil.Clock
	log *fetchLog
	v   *identity.Verifier
}

func newWatched(t *testing.T) watched {
	t.Helper()
	idp := newIdP(t, "rsa1.pem")
	clk := testutil.NewClock(t0)
	log := newFetchLog()
	return watched{idp: idp, clk: clk, log: log, v: newVerifier(t, clk, log, idp.issuer())}
}

// prime has the verifier accept tok, and waits for the JWKS fetch that
// took, which must succeed.
func (w watched) prime(t *testing.T, tok string) {
	t.Helper()
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("priming: got %v, want accepted", err)
	}
	if err := w.log.next(t); err != nil {
		t.Fatalf("priming fetch: got %v, want success", err)
	}
}

func TestUnknownKidRefetchHonoursCooldown(t *testing.T) {
	w := newWatched(t)

	w.prime(t, w.idp.sign(t, w.idp.gitlabClaims()))
	if got := w.idp.jwksHits.Load(); got != 1 {
		t.Fatalf("after priming: got %d JWKS fetches, want 1", got)
	}
	unknown := w.idp.signWith(t, w.idp.gitlabClaims(), devissuer.SignOptions{KeyID: "not-published"})

	// Within the cooldown of the priming fetch: no refetch.
	_, err := w.v.Verify(context.Background(), unknown)
	wantCode(t, err, identity.CodeUnknownKey)
	if got := w.idp.jwksHits.Load(); got != 1 {
		t.Errorf("unknown kid right after a fetch: got %d JWKS fetches, want 1", got)
	}

	// After the cooldown: one refetch, then the cooldown applies again.
	w.clk.Advance(identity.DefaultJWKSRefreshCooldown)
	for i := range 5 {
		_, err := w.v.Verify(context.Background(), unknown)
		wantCode(t, err, identity.CodeUnknownKey)
		if got := w.idp.jwksHits.Load(); got != 2 {
			t.Errorf("attempt %d after the cooldown: got %d JWKS fetches, want 2", i, got)
		}
	}
	w.clk.Advance(identity.DefaultJWKSRefreshCooldown - time.Second)
	_, err = w.v.Verify(context.Background(), unknown)
	wantCode(t, err, identity.CodeUnknownKey)
	if got := w.idp.jwksHits.Load(); got != 2 {
		t.Errorf("1s before the next cooldown ends: got %d JWKS fetches, want 2", got)
	}
	w.clk.Advance(time.Second)
	_, err = w.v.Verify(context.Background(), unknown)
	wantCode(t, err, identity.CodeUnknownKey)
	if got := w.idp.jwksHits.Load(); got != 3 {
		t.Errorf("after the second cooldown: got %d JWKS fetches, want 3", got)
	}
}

func TestKeyRotation(t *testing.T) {
	w := newWatched(t)
	w.prime(t, w.idp.sign(t, w.idp.gitlabClaims())) // the old key

	// The IdP rotates without notice: a new key appears next to the old.
	next, err := devissuer.NewFromKey(w.idp.srv.URL, loadKey(t, "rsa2.pem"))
	if err != nil {
		t.Fatal(err)
	}
	w.idp.setJWKS(mergeJWKS(t, next.JWKS(), w.idp.iss.JWKS()))
	w.clk.Advance(identity.DefaultJWKSRefreshCooldown)
	tok, err := next.Sign(w.idp.gitlabClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("new key after rotation: got %v, want accepted after a refetch", err)
	}
	if err := w.log.next(t); err != nil {
		t.Fatal(err)
	}
	if got := w.idp.jwksHits.Load(); got != 2 {
		t.Errorf("got %d JWKS fetches, want 2 (priming + unknown kid)", got)
	}
	old := w.idp.sign(t, w.idp.gitlabClaims())
	if _, err := w.v.Verify(context.Background(), old); err != nil {
		t.Errorf("old key still published: got %v, want accepted", err)
	}

	// The old key is withdrawn: stale keys serve while the background
	// refresh runs; once it is done, the old key is refused.
	w.idp.setJWKS(next.JWKS())
	w.clk.Advance(6 * time.Minute) // past max-age=300
	if _, err := w.v.Verify(context.Background(), old); err != nil {
		t.Errorf("stale cache during the background refresh: got %v, want accepted", err)
	}
	if err := w.log.next(t); err != nil {
		t.Fatalf("background refresh: got %v, want success", err)
	}
	_, err = w.v.Verify(context.Background(), old)
	wantCode(t, err, identity.CodeUnknownKey)
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Errorf("new key after refresh: got %v, want accepted", err)
	}
}

func TestStaleKeysRefreshedInBackground(t *testing.T) {
	w := newWatched(t)
	tok := w.idp.sign(t, w.idp.gitlabClaims())
	w.prime(t, tok)

	w.clk.Advance(4 * time.Minute) // max-age=300 not reached
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	w.clk.Advance(2 * time.Minute) // now older than max-age
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if err := w.log.next(t); err != nil {
		t.Fatalf("background refresh: got %v, want success", err)
	}
	if got := w.idp.jwksHits.Load(); got != 2 {
		t.Errorf("got %d JWKS fetches, want 2 (priming + one refresh after max-age)", got)
	}
}

func TestIdPDownKeepsCachedKeysWorking(t *testing.T) {
	w := newWatched(t)
	tok := w.idp.sign(t, w.idp.gitlabClaims())
	w.prime(t, tok)

	w.idp.down.Store(true)
	w.clk.Advance(10 * time.Minute) // keys are stale: a refresh is attempted
	if _, err := w.v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("IdP down, stale keys: got %v, want accepted with the cached keys", err)
	}
	if err := w.log.next(t); err == nil {
		t.Fatal("refresh against a down IdP: got no error reported to OnJWKSFetch, want one")
	}
	// Still accepted, and no new fetch within the cooldown.
	hits := w.idp.jwksHits.Load() + w.idp.discoHits.Load()
	for range 3 {
		if _, err := w.v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("IdP still down: got %v, want accepted", err)
		}
	}
	if got := w.idp.jwksHits.Load() + w.idp.discoHits.Load(); got != hits {
		t.Errorf("got %d requests to the down IdP, want %d (retry only after the cooldown)", got, hits)
	}
}

func TestIdPDownWithoutCache(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	idp.down.Store(true)
	clk := testutil.NewClock(t0)
	log := newFetchLog()
	v := newVerifier(t, clk, log, idp.issuer())
	ctx := context.Background()
	tok := idp.sign(t, idp.gitlabClaims())

	_, err := v.Verify(ctx, tok)
	e := wantCode(t, err, identity.CodeIssuerUnavailable)
	if e.Err == nil {
		t.Error("got no cause in Err, want the fetch error for the logs")
	}
	if strings.Contains(e.Message, "503") || strings.Contains(e.Message, idp.srv.URL) {
		t.Errorf("got message %q, want no internals", e.Message)
	}
	if err := log.next(t); err == nil {
		t.Error("got no error reported to OnJWKSFetch, want one")
	}

	// Within the cooldown the failure is remembered: no new request.
	hits := idp.discoHits.Load()
	_, err = v.Verify(ctx, tok)
	wantCode(t, err, identity.CodeIssuerUnavailable)
	if got := idp.discoHits.Load(); got != hits {
		t.Errorf("got %d discovery requests, want %d within the cooldown", got, hits)
	}

	// The IdP recovers; after the cooldown tokens are accepted.
	idp.down.Store(false)
	clk.Advance(identity.DefaultJWKSRefreshCooldown)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("IdP back: got %v, want accepted", err)
	}
}

func TestKeyFetchFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, idp *fakeIdP, is *identity.Issuer)
		wantErr string // in the cause
	}{
		{name: "discovery issuer mismatch", wantErr: "does not equal", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			other, err := devissuer.New(idp.srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			idp.setHandler(other.Handler())
		}},
		{name: "CA not trusted", wantErr: "certificate", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			is.CACert = ""
		}},
		{name: "JWKS larger than 1 MiB", wantErr: "larger than", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			b := idp.iss.JWKS()
			idp.setJWKS(append(b[:len(b)-1], []byte(`,"pad":"`+strings.Repeat("x", 1<<20)+`"}`)...))
		}},
		{name: "JWKS with only an encryption key", wantErr: "no usable", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			idp.setJWKS([]byte(strings.Replace(string(idp.iss.JWKS()), `"use":"sig"`, `"use":"enc"`, 1)))
		}},
		{name: "JWKS with an HMAC key", wantErr: "no usable", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			idp.setJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","alg":"HS256"}]}`))
		}},
		{name: "JWKS not JSON", wantErr: "parse jwks", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			idp.setJWKS([]byte("<html>"))
		}},
		{name: "jwks_url returns 404", wantErr: "404", setup: func(t *testing.T, idp *fakeIdP, is *identity.Issuer) {
			is.JWKSURL = idp.srv.URL + "/missing"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := newIdP(t, "rsa1.pem")
			is := idp.issuer()
			tt.setup(t, idp, &is)
			log := newFetchLog()
			v := newVerifier(t, testutil.NewClock(t0), log, is)
			_, err := v.Verify(context.Background(), idp.sign(t, idp.gitlabClaims()))
			e := wantCode(t, err, identity.CodeIssuerUnavailable)
			if e.Err == nil || !strings.Contains(e.Err.Error(), tt.wantErr) {
				t.Errorf("got cause %v, want one containing %q", e.Err, tt.wantErr)
			}
			if err := log.next(t); err == nil {
				t.Error("got no error reported to OnJWKSFetch, want one")
			}
		})
	}
}

func TestJWKSURLSkipsDiscovery(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.JWKSURL = idp.srv.URL + "/jwks"
	v := newVerifier(t, testutil.NewClock(t0), nil, is)
	if _, err := v.Verify(context.Background(), idp.sign(t, idp.gitlabClaims())); err != nil {
		t.Fatalf("got %v, want accepted", err)
	}
	if got := idp.discoHits.Load(); got != 0 {
		t.Errorf("got %d discovery requests, want 0 with jwks_url", got)
	}
}

func TestConcurrentColdStartFetchesOnce(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	v := newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	tok := idp.sign(t, idp.gitlabClaims())
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("got %v, want accepted", err)
		}
	}
	if got := idp.jwksHits.Load(); got != 1 {
		t.Errorf("got %d JWKS fetches, want 1 (single-flight)", got)
	}
}

// newHangingIdP is an IdP whose discovery requests hang until the test
// ends.
func newHangingIdP(t *testing.T) *fakeIdP {
	t.Helper()
	idp := newIdP(t, "rsa1.pem")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	idp.setHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	return idp
}

func TestVerifyCancelledWhileFetching(t *testing.T) {
	idp := newHangingIdP(t)
	v := newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, idp.sign(t, idp.gitlabClaims()))
	e := wantCode(t, err, identity.CodeIssuerUnavailable)
	if !errors.Is(e, context.Canceled) {
		t.Errorf("got cause %v, want context.Canceled", e.Err)
	}
}

func TestSetIssuersKeepsKeyCaches(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	idp2 := newIdP(t, "rsa2.pem")
	clk := testutil.NewClock(t0)
	v := newVerifier(t, clk, nil, idp.issuer())
	ctx := context.Background()
	tok := idp.sign(t, idp.gitlabClaims())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// reconfigure sets issuers, verifies tok again and checks how many
	// JWKS fetches there were in all.
	reconfigure := func(what string, wantHits int64, issuers ...identity.Issuer) {
		t.Helper()
		if err := v.SetIssuers(issuers); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if got := idp.jwksHits.Load(); got != wantHits {
			t.Errorf("%s: got %d JWKS fetches, want %d", what, got, wantHits)
		}
	}

	// Audiences change, a second issuer is added: the key cache stays.
	is := idp.issuer()
	is.Audiences = append(is.Audiences, "https://other.example.com")
	is2 := idp2.issuer()
	is2.Name = "gitlab-2"
	reconfigure("unchanged key source", 1, is, is2)

	// The key source changes (jwks_url set): a new cache.
	is.JWKSURL = idp.srv.URL + "/jwks"
	reconfigure("changed key source", 2, is, is2)
	if got := len(v.Issuers()); got != 2 {
		t.Errorf("got %d issuers, want 2", got)
	}

	// Removing the issuer makes its tokens unknown.
	if err := v.SetIssuers([]identity.Issuer{is2}); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(ctx, tok)
	wantCode(t, err, identity.CodeUnknownIssuer)
}

func TestSetIssuersRejectsInvalidAndKeepsOldSet(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	v := newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	good := idp.issuer()
	dupName := idp.issuer()
	dupName.URL = "https://other.example.com"
	bad := idp.issuer()
	bad.Name, bad.URL, bad.Audiences = "bad", "https://bad.example.com", nil

	err := v.SetIssuers([]identity.Issuer{good, dupName, bad})
	if err == nil {
		t.Fatal("got nil error, want duplicate name and missing audiences reported")
	}
	for _, want := range []string{"issuers[1]: name", "issuers[2]", "audiences"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}
	dupURL := idp.issuer()
	dupURL.Name = "other"
	if err := v.SetIssuers([]identity.Issuer{good, dupURL}); err == nil || !strings.Contains(err.Error(), "issuers[1]: url") {
		t.Errorf("got %v, want a duplicate url error", err)
	}
	if _, err := v.Verify(context.Background(), idp.sign(t, idp.gitlabClaims())); err != nil {
		t.Errorf("after rejected updates: got %v, want the old issuer set still in force", err)
	}
}

func TestIssuersReturnsDefaultsAndCopies(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.Leeway = 0
	v := newVerifier(t, testutil.NewClock(t0), nil, is)
	got := v.Issuers()
	if len(got) != 1 {
		t.Fatalf("got %d issuers, want 1", len(got))
	}
	g := got[0]
	if g.Leeway.D() != identity.DefaultLeeway || g.MaxTokenAge.D() != 24*time.Hour ||
		g.JWKSRefreshCooldown.D() != identity.DefaultJWKSRefreshCooldown || len(g.Algorithms) != 1 || g.Algorithms[0] != "RS256" {
		t.Errorf("got %+v, want defaults leeway 30s, max age 24h, cooldown 30s, algorithms [RS256]", g)
	}
	g.Audiences[0] = "mutated"
	if v.Issuers()[0].Audiences[0] != testAudience {
		t.Error("mutating the result of Issuers changed the verifier's config, want a copy")
	}
}

func TestOnJWKSFetchNamesIssuer(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	var mu sync.Mutex
	var names []string
	v := identity.NewVerifier(identity.Config{Now: testutil.NewClock(t0).Now, OnJWKSFetch: func(issuer string, err error) {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, issuer)
	}})
	if err := v.SetIssuers([]identity.Issuer{idp.issuer()}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), idp.sign(t, idp.gitlabClaims())); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 1 || names[0] != "gitlab" {
		t.Errorf("got hook calls %v, want [gitlab]", names)
	}
}

func TestCacheTTL(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", time.Hour},
		{"max-age=600", 10 * time.Minute},
		{"public, max-age=86400", 24 * time.Hour},
		{"max-age=10", 5 * time.Minute},
		{"max-age=604800", 24 * time.Hour},
		{"max-age=99999999999999999999", time.Hour},
		{"no-store", 5 * time.Minute},
		{"private, MAX-AGE=3600", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			if got := identity.CacheTTL(tt.header); got != tt.want {
				t.Errorf("CacheTTL(%q): got %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	ctx := context.Background()
	tests := []struct {
		name    string
		maxUses int
	}{
		{"once", 1},
		{"three times", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := idp.issuer()
			is.ReplayMaxUses = tt.maxUses
			v := newVerifier(t, testutil.NewClock(t0), nil, is)
			tok := idp.sign(t, idp.gitlabClaims())
			for i := range tt.maxUses {
				if _, err := v.Verify(ctx, tok); err != nil {
					t.Fatalf("use %d: got %v, want accepted", i+1, err)
				}
			}
			_, err := v.Verify(ctx, tok)
			wantCode(t, err, identity.CodeTokenReplayed)
			if _, err := v.Verify(ctx, idp.sign(t, idp.gitlabClaims())); err != nil {
				t.Errorf("a different jti: got %v, want accepted", err)
			}
		})
	}

	t.Run("jti required", func(t *testing.T) {
		is := idp.issuer()
		is.ReplayMaxUses = 1
		v := newVerifier(t, testutil.NewClock(t0), nil, is)
		c := idp.gitlabClaims()
		delete(c, "jti")
		_, err := v.Verify(ctx, idp.sign(t, c))
		e := wantCode(t, err, identity.CodeTokenMalformed)
		if !strings.Contains(e.Message, "jti required by issuer gitlab") {
			t.Errorf("got message %q, want it to name the requirement and the issuer", e.Message)
		}
	})

	t.Run("failed verifications do not consume uses", func(t *testing.T) {
		is := idp.issuer()
		is.ReplayMaxUses = 1
		clk := testutil.NewClock(t0.Add(-time.Hour))
		v := newVerifier(t, clk, nil, is)
		tok := idp.sign(t, idp.gitlabClaims())
		_, err := v.Verify(ctx, tok) // nbf and iat an hour ahead
		wantCode(t, err, identity.CodeTokenNotYetValid)
		clk.Advance(time.Hour)
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("got %v, want the first successful use accepted", err)
		}
	})

	t.Run("concurrent uses", func(t *testing.T) {
		is := idp.issuer()
		is.ReplayMaxUses = 5
		v := newVerifier(t, testutil.NewClock(t0), nil, is)
		tok := idp.sign(t, idp.gitlabClaims())
		var wg sync.WaitGroup
		results := make(chan string, 40)
		for range 40 {
			wg.Go(func() {
				_, err := v.Verify(ctx, tok)
				results <- identity.CodeOf(err)
			})
		}
		wg.Wait()
		close(results)
		counts := map[string]int{}
		for c := range results {
			counts[c]++
		}
		if counts[""] != 5 || counts[identity.CodeTokenReplayed] != 35 {
			t.Errorf("got %v, want 5 accepted and 35 %s", counts, identity.CodeTokenReplayed)
		}
	})

	t.Run("full cache fails closed until entries expire", func(t *testing.T) {
		is := idp.issuer()
		is.ReplayMaxUses = 1
		clk := testutil.NewClock(t0)
		v := identity.NewVerifier(identity.Config{Now: clk.Now, ReplayCacheSize: 2})
		if err := v.SetIssuers([]identity.Issuer{is}); err != nil {
			t.Fatal(err)
		}
		short := func(now time.Time) string {
			return idp.sign(t, devissuer.GitLabClaims(idp.srv.URL, devissuer.GitLabOptions{
				Now: now, TTL: 5 * time.Minute, Audience: []string{testAudience}}))
		}
		for i := range 2 {
			if _, err := v.Verify(ctx, short(t0)); err != nil {
				t.Fatalf("token %d: got %v, want accepted", i, err)
			}
		}
		_, err := v.Verify(ctx, short(t0))
		wantCode(t, err, identity.CodeReplayCacheFull)

		clk.Advance(5*time.Minute + 31*time.Second) // first two: past exp + leeway
		if _, err := v.Verify(ctx, short(clk.Now())); err != nil {
			t.Errorf("after expiry: got %v, want accepted (expired entries pruned)", err)
		}
	})
}

func TestLeewayIsConfigurable(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.Leeway = dur.Duration(5 * time.Second)
	v := newVerifier(t, testutil.NewClock(t0.Add(time.Hour+10*time.Second)), nil, is)
	_, err := v.Verify(context.Background(), idp.sign(t, idp.gitlabClaims()))
	wantCode(t, err, identity.CodeTokenExpired)
}

func TestDiscoveryUnderPath(t *testing.T) {
	// An issuer URL with a path: discovery is at URL + /.well-known/….
	idp := newIdP(t, "rsa1.pem")
	sub, err := devissuer.NewFromKey(idp.srv.URL+"/tenant", loadKey(t, "rsa3.pem"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/tenant/", http.StripPrefix("/tenant", sub.Handler()))
	idp.setHandler(mux)
	is := idp.issuer()
	is.URL = sub.URL()
	v := newVerifier(t, testutil.NewClock(t0), nil, is)
	tok, err := sub.Sign(devissuer.GitLabClaims(sub.URL(), devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("got %v, want accepted", err)
	}
}

// TestRunEndsInFlightFetches: a key fetch outlives the request that
// started it, but not the verifier's Run: cancelling Run's context ends a
// fetch hanging on the IdP, reported as an error with context.Canceled.
func TestRunEndsInFlightFetches(t *testing.T) {
	idp := newHangingIdP(t)
	log := newFetchLog()
	v := newVerifier(t, testutil.NewClock(t0), log, idp.issuer())
	life, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- v.Run(life) }()
	// The caller gives up at once; the fetch it started goes on.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, idp.sign(t, idp.gitlabClaims())); err == nil {
		t.Fatal("Verify with a hanging IdP = nil error")
	}
	stop()
	if err := log.next(t); !errors.Is(err, context.Canceled) {
		t.Errorf("fetch ended with %v, want context.Canceled (the verifier's lifetime ended)", err)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run = %v", err)
	}
}
