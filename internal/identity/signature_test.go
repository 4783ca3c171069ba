package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

// signatureKeys returns two private keys for alg's family: the trusted
// one and another.
func signatureKeys(t *testing.T, alg string) (trusted, other crypto.Signer) {
	t.Helper()
	switch {
	case alg == "EdDSA":
		_, a, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	case strings.HasPrefix(alg, "ES"):
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		a, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	return loadKey(t, "rsa1.pem"), loadKey(t, "rsa2.pem")
}

// TestVerifySignature signs a GitLab token with every supported algorithm
// and checks, through Verify, that the signature step accepts it and
// refuses it after each kind of tampering: a flipped signature bit, a
// truncated, zero-padded or empty signature, a swapped payload, and a
// signature by another key of the same type.
func TestVerifySignature(t *testing.T) {
	const url = "https://static.example.com" // never contacted: static keys
	iss, err := devissuer.NewFromKey(url, loadKey(t, "rsa1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	claims := devissuer.GitLabClaims(url, devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}})
	enc := base64.RawURLEncoding
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		trusted, other := signatureKeys(t, alg)
		sign := func(t *testing.T, key crypto.Signer) string {
			tok, err := iss.SignWith(claims, devissuer.SignOptions{Alg: alg, Key: key})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		// withSig replaces the signature of tok by f(its bytes).
		withSig := func(t *testing.T, tok string, f func([]byte) []byte) string {
			dot := strings.LastIndexByte(tok, '.')
			sig, err := enc.DecodeString(tok[dot+1:])
			if err != nil {
				t.Fatal(err)
			}
			return tok[:dot+1] + enc.EncodeToString(f(sig))
		}
		tests := []struct {
			name string
			tok  func(t *testing.T) string
			want string // "" accepted
		}{
			{name: "valid", tok: func(t *testing.T) string { return sign(t, trusted) }},
			{name: "flipped signature bit", want: identity.CodeSignatureInvalid, tok: func(t *testing.T) string {
				return withSig(t, sign(t, trusted), func(s []byte) []byte { s[len(s)/2] ^= 1; return s })
			}},
			{name: "truncated signature", want: identity.CodeSignatureInvalid, tok: func(t *testing.T) string {
				return withSig(t, sign(t, trusted), func(s []byte) []byte { return s[:len(s)-1] })
			}},
			// For ECDSA: the same r and s as numbers, in a non-canonical length.
			{name: "zero-padded signature", want: identity.CodeSignatureInvalid, tok: func(t *testing.T) string {
				return withSig(t, sign(t, trusted), func(s []byte) []byte {
					return append(append(append([]byte(nil), s[:len(s)/2]...), 0), s[len(s)/2:]...)
				})
			}},
			{name: "empty signature", want: identity.CodeSignatureInvalid, tok: func(t *testing.T) string {
				return withSig(t, sign(t, trusted), func([]byte) []byte { return nil })
			}},
			{name: "other payload", want: identity.CodeSignatureInvalid, tok: func(t *testing.T) string {
				parts := strings.Split(sign(t, trusted), ".")
				forged := devissuer.GitLabClaims(url, devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}, ProjectPath: "evil/app"})
				other, err := iss.SignWith(forged, devissuer.SignOptions{Alg: alg, Key: trusted})
				if err != nil {
					t.Fatal(err)
				}
				return parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
			}},
			{name: "other key", want: identity.CodeSignatureInvalid, tok: func(t *testing.T) string { return sign(t, other) }},
		}
		is := identity.Issuer{Name: "static", Kind: identity.KindGitLab, URL: url, Audiences: []string{testAudience},
			Algorithms: []string{alg}, PublicKeys: []string{pkixPEM(t, trusted.Public())}}
		v := newVerifier(t, testutil.NewClock(t0), nil, is)
		for _, tt := range tests {
			t.Run(alg+"/"+tt.name, func(t *testing.T) {
				_, err := v.Verify(context.Background(), tt.tok(t))
				if tt.want == "" {
					if err != nil {
						t.Fatalf("got %v, want accepted", err)
					}
					return
				}
				wantCode(t, err, tt.want)
			})
		}
	}
}

// TestVerifySignatureKeyTypeMismatch: an issuer that allows several
// algorithms never verifies a token with a key of another family or
// curve; the key lookup finds no usable key.
func TestVerifySignatureKeyTypeMismatch(t *testing.T) {
	const url = "https://static.example.com"
	iss, err := devissuer.NewFromKey(url, loadKey(t, "rsa1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	claims := devissuer.GitLabClaims(url, devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}})
	p256, _ := signatureKeys(t, "ES256")
	p384, _ := signatureKeys(t, "ES384")
	ed, _ := signatureKeys(t, "EdDSA")
	rsaKey := loadKey(t, "rsa1.pem")
	tests := []struct {
		name    string
		trusted crypto.PublicKey
		alg     string
		signer  crypto.Signer
	}{
		{"P-256 key, ES384 token", p256.Public(), "ES384", p384},
		{"P-384 key, ES256 token", p384.Public(), "ES256", p256},
		{"RSA key, ES256 token", &rsaKey.PublicKey, "ES256", p256},
		{"RSA key, EdDSA token", &rsaKey.PublicKey, "EdDSA", ed},
		{"Ed25519 key, RS256 token", ed.Public(), "RS256", rsaKey},
		{"P-256 key, PS256 token", p256.Public(), "PS256", rsaKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := identity.Issuer{Name: "static", Kind: identity.KindGitLab, URL: url, Audiences: []string{testAudience},
				Algorithms: []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}, PublicKeys: []string{pkixPEM(t, tt.trusted)}}
			v := newVerifier(t, testutil.NewClock(t0), nil, is)
			tok, err := iss.SignWith(claims, devissuer.SignOptions{Alg: tt.alg, Key: tt.signer})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), tok)
			wantCode(t, err, identity.CodeUnknownKey)
		})
	}
}
