package devissuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyferry/keyferry/internal/devissuer"
)

// testKey returns a fresh RSA-2048 key (tens of milliseconds each).
func testKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serve mounts a devissuer at path on a TLS test server and returns it.
func serve(t *testing.T, path string, key *rsa.PrivateKey) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*h.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	iss, err := devissuer.NewFromKey(srv.URL+path, key)
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = iss.Handler()
	if path != "" {
		mux := http.NewServeMux()
		mux.Handle(path+"/", http.StripPrefix(path, iss.Handler()))
		handler = mux
	}
	h.Store(&handler)
	return iss, srv
}

func TestHandlerRoundTripWithGoOIDC(t *testing.T) {
	key := testKey(t)
	for _, path := range []string{"", "/dev/issuer"} {
		t.Run("mounted at "+path+"/", func(t *testing.T) {
			iss, srv := serve(t, path, key)
			ctx := oidc.ClientContext(context.Background(), srv.Client())
			provider, err := oidc.NewProvider(ctx, iss.URL())
			if err != nil {
				t.Fatalf("discovery: %v", err)
			}
			now := time.Now()
			tok, err := iss.Sign(devissuer.GitLabClaims(iss.URL(), devissuer.GitLabOptions{ProjectPath: "acme/app", Now: now}))
			if err != nil {
				t.Fatal(err)
			}
			idt, err := provider.Verifier(&oidc.Config{ClientID: devissuer.DefaultAudience}).Verify(ctx, tok)
			if err != nil {
				t.Fatalf("go-oidc verify: %v", err)
			}
			if want := "project_path:acme/app:ref_type:branch:ref:main"; idt.Subject != want {
				t.Errorf("got sub %q, want %q", idt.Subject, want)
			}
		})
	}
}

func TestHandlerDocuments(t *testing.T) {
	iss, srv := serve(t, "", testKey(t))
	tests := []struct {
		path       string
		wantStatus int
	}{
		{"/.well-known/openid-configuration", http.StatusOK},
		{"/jwks", http.StatusOK},
		{"/other", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			if got, want := resp.Header.Get("Cache-Control"), "max-age=300"; !strings.Contains(got, want) {
				t.Errorf("got Cache-Control %q, want it to contain %q", got, want)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", got)
			}
			switch tt.path {
			case "/jwks":
				if string(body) != string(iss.JWKS()) {
					t.Errorf("got %s, want JWKS() %s", body, iss.JWKS())
				}
			default:
				var doc map[string]any
				if err := json.Unmarshal(body, &doc); err != nil {
					t.Fatal(err)
				}
				if doc["issuer"] != iss.URL() || doc["jwks_uri"] != iss.URL()+"/jwks" {
					t.Errorf("got issuer %v jwks_uri %v, want %s and %s/jwks", doc["issuer"], doc["jwks_uri"], iss.URL(), iss.URL())
				}
			}
		})
	}
}

func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	key := testKey(t)
	iss, err := devissuer.NewFromKey("https://issuer.example.com", key)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7638 §3: SHA-256 of the required members, lexicographic order,
	// no whitespace, computed here by hand.
	enc := base64.RawURLEncoding
	e := big.NewInt(int64(key.E)).Bytes()
	canonical := `{"e":"` + enc.EncodeToString(e) + `","kty":"RSA","n":"` + enc.EncodeToString(key.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	if want := enc.EncodeToString(sum[:]); iss.KeyID() != want {
		t.Errorf("got kid %q, want %q", iss.KeyID(), want)
	}

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("got %d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KeyID != iss.KeyID() || k.Algorithm != "RS256" || k.Use != "sig" || !k.IsPublic() {
		t.Errorf("got kid %q alg %q use %q public %v, want %q RS256 sig true", k.KeyID, k.Algorithm, k.Use, k.IsPublic(), iss.KeyID())
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	key := testKey(t)
	tests := []struct {
		name string
		url  string
		key  *rsa.PrivateKey
	}{
		{"relative url", "issuer.example.com", key},
		{"url with query", "https://issuer.example.com/?x=1", key},
		{"ftp url", "ftp://issuer.example.com", key},
		{"nil key", "https://issuer.example.com", nil},
		{"1024-bit key", "https://issuer.example.com", small},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := devissuer.NewFromKey(tt.url, tt.key); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}

func TestNewGeneratesDistinctKeys(t *testing.T) {
	a, err := devissuer.New("http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	b, err := devissuer.New("http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() == b.KeyID() {
		t.Errorf("got the same kid %q twice, want fresh keys", a.KeyID())
	}
}

// decodeParts returns a compact JWS's header and payload.
func decodeParts(t *testing.T, tok string) (header, payload map[string]any, signingInput, sig []byte) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("got %d parts, want 3", len(parts))
	}
	dec := func(s string, v any) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	dec(parts[0], &header)
	dec(parts[1], &payload)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	return header, payload, []byte(parts[0] + "." + parts[1]), sig
}

func TestSignHeader(t *testing.T) {
	iss, err := devissuer.NewFromKey("https://issuer.example.com", testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Sign(map[string]any{"sub": "x"})
	if err != nil {
		t.Fatal(err)
	}
	h, p, _, _ := decodeParts(t, tok)
	if h["alg"] != "RS256" || h["kid"] != iss.KeyID() || h["typ"] != "JWT" || len(h) != 3 {
		t.Errorf("got header %v, want exactly alg RS256, kid %s, typ JWT", h, iss.KeyID())
	}
	if p["sub"] != "x" {
		t.Errorf("got payload %v, want sub x", p)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Claims(iss.PublicKey()); err != nil {
		t.Errorf("go-jose verify: got %v, want a valid signature", err)
	}
}

func TestSignWith(t *testing.T) {
	iss, err := devissuer.NewFromKey("https://issuer.example.com", testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("-----BEGIN PUBLIC KEY----- pretend this is the issuer's public key")
	claims := map[string]any{"sub": "x"}
	tests := []struct {
		name    string
		opts    devissuer.SignOptions
		verify  func(t *testing.T, input, sig []byte) // nil: go-jose with pub
		alg     jose.SignatureAlgorithm
		pub     any
		wantHdr map[string]any
	}{
		{name: "PS256", opts: devissuer.SignOptions{Alg: "PS256"}, alg: jose.PS256, pub: iss.PublicKey()},
		{name: "RS512", opts: devissuer.SignOptions{Alg: "RS512"}, alg: jose.RS512, pub: iss.PublicKey()},
		{name: "ES384", opts: devissuer.SignOptions{Alg: "ES384", Key: ecKey}, alg: jose.ES384, pub: &ecKey.PublicKey},
		{name: "EdDSA", opts: devissuer.SignOptions{Alg: "EdDSA", Key: edKey}, alg: jose.EdDSA, pub: edPub},
		{name: "HS256 with a chosen secret", opts: devissuer.SignOptions{Alg: "HS256", Key: secret},
			verify: func(t *testing.T, input, sig []byte) {
				m := hmac.New(crypto.SHA256.New, secret)
				m.Write(input)
				if !hmac.Equal(m.Sum(nil), sig) {
					t.Error("got an HMAC that does not match, want HMAC-SHA256 of the signing input")
				}
			}},
		{name: "none", opts: devissuer.SignOptions{Alg: "none"},
			verify: func(t *testing.T, input, sig []byte) {
				if len(sig) != 0 {
					t.Errorf("got a %d-byte signature, want none", len(sig))
				}
			}},
		{name: "extra headers and kid override", opts: devissuer.SignOptions{KeyID: "k2",
			Headers: map[string]any{"jku": "https://attacker.example/jwks", "typ": "at+jwt"}},
			alg: jose.RS256, pub: iss.PublicKey(), wantHdr: map[string]any{"kid": "k2", "jku": "https://attacker.example/jwks", "typ": "at+jwt"}},
		{name: "no kid", opts: devissuer.SignOptions{OmitKeyID: true}, alg: jose.RS256, pub: iss.PublicKey(),
			wantHdr: map[string]any{"kid": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := iss.SignWith(claims, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			h, _, input, sig := decodeParts(t, tok)
			wantAlg := tt.opts.Alg
			if wantAlg == "" {
				wantAlg = "RS256"
			}
			if h["alg"] != wantAlg {
				t.Errorf("got alg %v, want %s", h["alg"], wantAlg)
			}
			for k, v := range tt.wantHdr {
				if h[k] != v {
					t.Errorf("got header %s = %v, want %v", k, h[k], v)
				}
			}
			if tt.verify != nil {
				tt.verify(t, input, sig)
				return
			}
			parsed, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{tt.alg})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parsed.Verify(tt.pub); err != nil {
				t.Errorf("go-jose verify: got %v, want a valid %s signature", err, tt.alg)
			}
		})
	}
}

func TestSignWithErrors(t *testing.T) {
	iss, err := devissuer.NewFromKey("https://issuer.example.com", testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts devissuer.SignOptions
	}{
		{"unknown alg", devissuer.SignOptions{Alg: "XS256"}},
		{"HS256 without a secret", devissuer.SignOptions{Alg: "HS256"}},
		{"ES256 with an RSA key", devissuer.SignOptions{Alg: "ES256"}},
		{"unmarshalable header", devissuer.SignOptions{Headers: map[string]any{"x": func() {}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := iss.SignWith(map[string]any{}, tt.opts); err == nil {
				t.Error("got nil error, want one")
			}
		})
	}
}
