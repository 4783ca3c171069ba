package identity_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

// t0 is the fixed "now" of most tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testAudience = "https://keyferry.example.com"

// newECKey generates a P-256 key.
func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pkixDER is pub's PKIX (SubjectPublicKeyInfo) DER encoding.
func pkixDER(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// pkixPEM is pub as a PEM PUBLIC KEY block.
func pkixPEM(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	return pemBlock("PUBLIC KEY", pkixDER(t, pub))
}

// pemBlock is der as a PEM block of type typ.
func pemBlock(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// testKeys caches the RSA keys tests use, generated once per test binary:
// no private key is committed, and generating 2048-bit keys per test would
// be slow.
var testKeys sync.Map // name → *rsa.PrivateKey

// loadKey returns the test key called name ("rsa1024.pem" is 1024 bits,
// every other name 2048), the same key for the same name within a run.
func loadKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	if k, ok := testKeys.Load(name); ok {
		return k.(*rsa.PrivateKey)
	}
	bits := 2048
	if strings.Contains(name, "1024") {
		bits = 1024
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	actual, _ := testKeys.LoadOrStore(name, k)
	return actual.(*rsa.PrivateKey)
}

// fakeIdP is an in-process OIDC issuer on a TLS server: devissuer's
// discovery document, and a JWKS endpoint whose content, availability and
// hit count the test controls.
type fakeIdP struct {
	srv   *httptest.Server
	iss   *devissuer.Issuer
	caPEM string

	handler   atomic.Pointer[http.Handler] // serves everything but /jwks
	jwks      atomic.Pointer[[]byte]
	maxAge    atomic.Int64 // Cache-Control max-age of /jwks, seconds
	down      atomic.Bool
	jwksHits  atomic.Int64 // every /jwks request, failed ones included
	discoHits atomic.Int64
}

func newIdP(t testing.TB, keyFile string) *fakeIdP {
	t.Helper()
	f := &fakeIdP{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS failures are expected in some tests
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	iss, err := devissuer.NewFromKey(f.srv.URL, loadKey(t, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	f.iss = iss
	f.setHandler(iss.Handler())
	jwks := iss.JWKS()
	f.jwks.Store(&jwks)
	f.maxAge.Store(300)
	f.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}))
	return f
}

func (f *fakeIdP) setHandler(h http.Handler) { f.handler.Store(&h) }

func (f *fakeIdP) setJWKS(b []byte) { f.jwks.Store(&b) }

func (f *fakeIdP) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/jwks" {
		f.jwksHits.Add(1)
	} else {
		f.discoHits.Add(1)
	}
	if f.down.Load() {
		http.Error(w, "identity provider is down", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == "/jwks" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age="+itoa(f.maxAge.Load()))
		_, _ = w.Write(*f.jwks.Load())
		return
	}
	(*f.handler.Load()).ServeHTTP(w, r)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// issuer returns a GitLab issuer config for the IdP (discovery, the IdP's
// CA trusted through ca_cert).
func (f *fakeIdP) issuer() identity.Issuer {
	return identity.Issuer{
		Name:      "gitlab",
		Kind:      identity.KindGitLab,
		URL:       f.srv.URL,
		CACert:    f.caPEM,
		Audiences: []string{testAudience},
		Leeway:    dur.Duration(30 * time.Second),
	}
}

// gitlabClaims returns valid GitLab claims issued at t0.
func (f *fakeIdP) gitlabClaims() map[string]any {
	return devissuer.GitLabClaims(f.srv.URL, devissuer.GitLabOptions{
		Now:      t0,
		Audience: []string{testAudience},
	})
}

func (f *fakeIdP) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := f.iss.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fakeIdP) signWith(t testing.TB, claims map[string]any, opts devissuer.SignOptions) string {
	t.Helper()
	tok, err := f.iss.SignWith(claims, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fetchLog records OnJWKSFetch calls and lets tests wait for them.
type fetchLog struct {
	ch chan error
}

func newFetchLog() *fetchLog { return &fetchLog{ch: make(chan error, 100)} }

func (l *fetchLog) hook(issuer string, err error) { l.ch <- err }

// next waits for the next fetch report.
func (l *fetchLog) next(t testing.TB) error {
	t.Helper()
	select {
	case err := <-l.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no JWKS fetch was reported")
		return nil
	}
}

// newVerifier returns a verifier on clk trusting issuers.
func newVerifier(t testing.TB, clk *testutil.Clock, log *fetchLog, issuers ...identity.Issuer) *identity.Verifier {
	t.Helper()
	cfg := identity.Config{Now: clk.Now}
	if log != nil {
		cfg.OnJWKSFetch = log.hook
	}
	v := identity.NewVerifier(cfg)
	if err := v.SetIssuers(issuers); err != nil {
		t.Fatal(err)
	}
	return v
}

// wantCode checks that err is an *identity.Error with code want.
func wantCode(t testing.TB, err error, want string) *identity.Error {
	t.Helper()
	var e *identity.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want *identity.Error with code %s", err, err, want)
	}
	if e.Code != want {
		t.Fatalf("got code %s (%v), want %s", e.Code, err, want)
	}
	if e.Message == "" {
		t.Errorf("got empty message for code %s", e.Code)
	}
	return e
}
