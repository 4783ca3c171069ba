package peers

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// IdP is an OIDC identity provider for web-identity tests: an HTTPS server
// on 127.0.0.1 serving discovery and a JWKS, and an RSA key that signs
// tokens. SeaweedFS only fetches JWKS over HTTPS, verifying the server with
// CAFile.
type IdP struct {
	Issuer string // https://127.0.0.1:PORT, the "iss" of every token
	CAFile string // PEM of the certificate that signs the server's TLS cert
	CAPEM  []byte

	server  *httptest.Server
	dir     string
	ownsDir bool

	mu   sync.Mutex
	keys []*rsaKey // keys[0] signs; all are published

	jwksRequests atomic.Int64
}

type rsaKey struct {
	id  string
	key *rsa.PrivateKey
}

func newRSAKey() (*rsaKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &rsaKey{id: "k-" + randomHex(4), key: k}, nil
}

// StartTLSIdP starts an IdP for one test and closes it in t.Cleanup.
func StartTLSIdP(t testing.TB) *IdP {
	t.Helper()
	idp, err := newTLSIdP(t.TempDir())
	if err != nil {
		t.Fatalf("start IdP: %v", err)
	}
	t.Cleanup(idp.Close)
	return idp
}

// NewTLSIdP starts an IdP the caller closes (see Shared).
func NewTLSIdP() (*IdP, error) {
	dir, err := makeOwnedTempDir("keyferry-idp-")
	if err != nil {
		return nil, err
	}
	idp, err := newTLSIdP(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	idp.ownsDir = true
	return idp, nil
}

func newTLSIdP(dir string) (*IdP, error) {
	k, err := newRSAKey()
	if err != nil {
		return nil, err
	}
	idp := &IdP{dir: dir, keys: []*rsaKey{k}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", idp.serveDiscovery)
	mux.HandleFunc("GET /jwks.json", idp.serveJWKS)
	// httptest binds 127.0.0.1:0; its certificate is valid for 127.0.0.1.
	idp.server = httptest.NewTLSServer(mux)
	idp.Issuer = idp.server.URL
	idp.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.server.Certificate().Raw})
	idp.CAFile = filepath.Join(dir, "idp-ca.pem")
	if err := os.WriteFile(idp.CAFile, idp.CAPEM, 0o644); err != nil {
		idp.server.Close()
		return nil, err
	}
	return idp, nil
}

// Close stops the server and removes its files. It is idempotent.
func (i *IdP) Close() {
	i.server.Close()
	if i.ownsDir {
		os.RemoveAll(i.dir)
	}
}

// JWKSURL is the URL of the key set.
func (i *IdP) JWKSURL() string { return i.Issuer + "/jwks.json" }

// HTTPClient returns a client that trusts the IdP's certificate.
func (i *IdP) HTTPClient() *http.Client { return i.server.Client() }

// JWKSRequests counts the key-set fetches served so far.
func (i *IdP) JWKSRequests() int64 { return i.jwksRequests.Load() }

// SeaweedProvider returns the SeaweedFS provider entry that trusts this IdP
// for tokens whose audience is clientID.
func (i *IdP) SeaweedProvider(name, clientID string) SeaweedOIDCProvider {
	return SeaweedOIDCProvider{Name: name, Issuer: i.Issuer, ClientID: clientID, JWKSURI: i.JWKSURL(), CACertFile: i.CAFile}
}

// RotateKey makes a new key the signing key. With keepOld the previous keys
// stay published; without, tokens they signed stop verifying.
func (i *IdP) RotateKey(keepOld bool) error {
	k, err := newRSAKey()
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if keepOld {
		i.keys = append([]*rsaKey{k}, i.keys...)
	} else {
		i.keys = []*rsaKey{k}
	}
	return nil
}

// Claims returns the usual claims of a token for sub and aud, valid from a
// minute ago for an hour. Edit the map before Sign to build bad tokens.
func (i *IdP) Claims(sub, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": i.Issuer,
		"sub": sub,
		"aud": aud,
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"jti": randomHex(8),
	}
}

// Sign returns a compact RS256 JWS of claims, signed with the current key.
// It panics if claims cannot be marshalled to JSON, a bug in the test.
func (i *IdP) Sign(claims any) string {
	i.mu.Lock()
	k := i.keys[0]
	i.mu.Unlock()
	return sign(k, claims)
}

// SignWithUnknownKey signs claims with a fresh key that the JWKS does not
// publish, under the current key's kid: a forged token.
func (i *IdP) SignWithUnknownKey(claims any) string {
	forged, err := newRSAKey()
	if err != nil {
		panic(err)
	}
	i.mu.Lock()
	forged.id = i.keys[0].id
	i.mu.Unlock()
	return sign(forged, claims)
}

func sign(k *rsaKey, claims any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("peers: marshal claims: %v", err))
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		panic(fmt.Sprintf("peers: signer: %v", err))
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		panic(fmt.Sprintf("peers: sign: %v", err))
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(fmt.Sprintf("peers: serialize: %v", err))
	}
	return s
}

func (i *IdP) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{
		"issuer":                                i.Issuer,
		"jwks_uri":                              i.JWKSURL(),
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf"},
	})
}

func (i *IdP) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksRequests.Add(1)
	i.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.key.PublicKey, KeyID: k.id, Algorithm: string(jose.RS256), Use: "sig"})
	}
	i.mu.Unlock()
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
