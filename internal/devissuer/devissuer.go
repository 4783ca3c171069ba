// Package devissuer is a small OIDC issuer for dev mode and tests. It
// serves an OIDC discovery document and a JWKS, and mints RS256 tokens
// shaped like the tokens of every CI kind: Claims builds any kind's
// claims from its template in internal/cikind, and GitLabClaims,
// GitHubClaims and KubernetesClaims expose every knob of those three.
//
// SignWith can also build deliberately bad tokens (alg none, HMAC with a
// public key as secret, forbidden headers, foreign keys) for the negative
// tests of internal/identity. It is not meant to protect anything: its
// keys live in memory and every token it is asked for is signed.
package devissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyferry/keyferry/internal/cikind"
)

// DefaultAudience is the aud of minted tokens when options name none.
const DefaultAudience = cikind.DevAudience

// JWKSCacheMaxAge is the max-age the JWKS and discovery responses carry.
const JWKSCacheMaxAge = 300

// Issuer is an in-memory OIDC issuer with one RSA signing key. It is
// immutable and safe for concurrent use.
type Issuer struct {
	url       string
	key       *rsa.PrivateKey
	kid       string
	jwks      []byte
	discovery []byte
}

// New returns an issuer for issuerURL with a fresh RSA-2048 key.
func New(issuerURL string) (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devissuer: generate key: %w", err)
	}
	return NewFromKey(issuerURL, key)
}

// NewFromKey returns an issuer for issuerURL signing with key. The key id
// is the key's RFC 7638 thumbprint (SHA-256, base64url).
func NewFromKey(issuerURL string, key *rsa.PrivateKey) (*Issuer, error) {
	u, err := url.Parse(issuerURL)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") ||
		u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("devissuer: issuer url %q must be an absolute http(s) URL without query or fragment", issuerURL)
	}
	if key == nil {
		return nil, errors.New("devissuer: nil key")
	}
	if bits := key.N.BitLen(); bits < 2048 {
		return nil, fmt.Errorf("devissuer: RSA key of %d bits is too small (minimum 2048)", bits)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: "RS256", Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		return nil, fmt.Errorf("devissuer: marshal jwks: %w", err)
	}
	disc, err := json.Marshal(map[string]any{
		"issuer":                                issuerURL,
		"jwks_uri":                              strings.TrimSuffix(issuerURL, "/") + "/jwks",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid"},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"},
	})
	if err != nil {
		return nil, fmt.Errorf("devissuer: marshal discovery: %w", err)
	}
	return &Issuer{url: issuerURL, key: key, kid: jwk.KeyID, jwks: jwks, discovery: disc}, nil
}

// URL returns the issuer URL (the iss of its tokens).
func (i *Issuer) URL() string { return i.url }

// KeyID returns the kid of the signing key.
func (i *Issuer) KeyID() string { return i.kid }

// PublicKey returns the public half of the signing key.
func (i *Issuer) PublicKey() *rsa.PublicKey { return &i.key.PublicKey }

// JWKS returns the JWK Set document with the issuer's public key.
func (i *Issuer) JWKS() []byte { return append([]byte(nil), i.jwks...) }

// Handler serves the discovery document at
// "/.well-known/openid-configuration" and the JWKS at "/jwks", relative
// to where it is mounted: mount it at the issuer URL's path (with
// http.StripPrefix when that path is not "/").
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", JWKSCacheMaxAge))
			_, _ = w.Write(body)
		}
	}
	mux.Handle("GET /.well-known/openid-configuration", serve(i.discovery))
	mux.Handle("GET /jwks", serve(i.jwks))
	return mux
}

// Sign signs claims as a compact JWS: RS256 with the issuer's key, header
// {"alg":"RS256","kid":…,"typ":"JWT"}.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	return i.SignWith(claims, SignOptions{})
}

// SignOptions adjust SignWith, mostly to build attack tokens in tests.
type SignOptions struct {
	// Alg is the alg header and signing algorithm (default RS256): RS*,
	// PS*, ES*, EdDSA, HS* (Key must be a []byte secret) or "none" (no
	// signature).
	Alg string
	// Key signs instead of the issuer's key: *rsa.PrivateKey,
	// *ecdsa.PrivateKey, ed25519.PrivateKey or []byte for HS*.
	Key any
	// KeyID replaces the kid header; OmitKeyID leaves kid out.
	KeyID     string
	OmitKeyID bool
	// Headers are added to the protected header, replacing alg, kid or typ
	// if they name them (e.g. "jku", "x5u", "jwk", "crit").
	Headers map[string]any
}

// SignWith signs claims as a compact JWS as opts says.
func (i *Issuer) SignWith(claims map[string]any, opts SignOptions) (string, error) {
	alg := opts.Alg
	if alg == "" {
		alg = "RS256"
	}
	key := opts.Key
	if key == nil {
		key = i.key
	}
	header := map[string]any{"alg": alg, "typ": "JWT"}
	switch {
	case opts.OmitKeyID:
	case opts.KeyID != "":
		header["kid"] = opts.KeyID
	default:
		header["kid"] = i.kid
	}
	for k, v := range opts.Headers {
		header[k] = v
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal header: %w", err)
	}
	p, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devissuer: marshal claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	sig, err := signBytes(alg, key, []byte(input))
	if err != nil {
		return "", fmt.Errorf("devissuer: sign %s: %w", alg, err)
	}
	return input + "." + enc.EncodeToString(sig), nil
}

// signBytes computes the JWS signature of input (RFC 7518 §3).
func signBytes(alg string, key any, input []byte) ([]byte, error) {
	if alg == "none" {
		return nil, nil
	}
	if alg == "EdDSA" {
		k, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an ed25519.PrivateKey, got %T", key)
		}
		return ed25519.Sign(k, input), nil
	}
	if len(alg) != 5 {
		return nil, fmt.Errorf("unsupported alg %q", alg)
	}
	var hash crypto.Hash
	switch alg[2:] {
	case "256":
		hash = crypto.SHA256
	case "384":
		hash = crypto.SHA384
	case "512":
		hash = crypto.SHA512
	default:
		return nil, fmt.Errorf("unsupported alg %q", alg)
	}
	h := hash.New()
	h.Write(input)
	digest := h.Sum(nil)
	switch alg[:2] {
	case "RS", "PS":
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an *rsa.PrivateKey, got %T", key)
		}
		if alg[0] == 'R' {
			return rsa.SignPKCS1v15(rand.Reader, k, hash, digest)
		}
		return rsa.SignPSS(rand.Reader, k, hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an *ecdsa.PrivateKey, got %T", key)
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	case "HS":
		secret, ok := key.([]byte)
		if !ok {
			return nil, fmt.Errorf("want a []byte secret, got %T", key)
		}
		m := hmac.New(hash.New, secret)
		m.Write(input)
		return m.Sum(nil), nil
	}
	return nil, fmt.Errorf("unsupported alg %q", alg)
}
