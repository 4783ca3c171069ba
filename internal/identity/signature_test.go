package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// TestVerifySignatureAgreesWithGoJose signs tokens with go-jose for every
// supported algorithm and checks that verifySignature accepts and rejects
// exactly what go-jose's own verification does: valid tokens, flipped
// signature and payload bits, truncated signatures and other keys.
func TestVerifySignatureAgreesWithGoJose(t *testing.T) {
	rsa1, rsa2 := genRSA(t), genRSA(t)
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	_, ed1, _ := ed25519.GenerateKey(rand.Reader)
	_, ed2, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string][2]crypto.Signer{
		"RS": {rsa1, rsa2}, "PS": {rsa1, rsa2},
		"ES256": {ec(elliptic.P256()), ec(elliptic.P256())},
		"ES384": {ec(elliptic.P384()), ec(elliptic.P384())},
		"ES512": {ec(elliptic.P521()), ec(elliptic.P521())},
		"EdDSA": {ed1, ed2},
	}
	payload := []byte(`{"iss":"https://gitlab.example.com","sub":"project_path:g/p:ref_type:branch:ref:main","exp":1900000000}`)

	for _, alg := range supportedAlgorithms {
		pair, ok := keys[alg]
		if !ok {
			pair = keys[alg[:2]]
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: pair[0]}, nil)
		if err != nil {
			t.Fatalf("%s: new signer: %v", alg, err)
		}
		obj, err := signer.Sign(payload)
		if err != nil {
			t.Fatalf("%s: sign: %v", alg, err)
		}
		compact, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		dot := strings.LastIndexByte(compact, '.')
		sig, err := base64.RawURLEncoding.DecodeString(compact[dot+1:])
		if err != nil {
			t.Fatal(err)
		}
		flipped := append([]byte(nil), sig...)
		flipped[len(flipped)/2] ^= 1
		// A zero byte before the second half: for ECDSA the same r and s
		// as numbers, in a non-canonical length that must be refused.
		padded := append(append(append([]byte(nil), sig[:len(sig)/2]...), 0), sig[len(sig)/2:]...)
		// A different payload signed by nobody: swap the payload segment.
		hdr, _, _ := strings.Cut(compact, ".")
		otherInput := hdr + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://evil.example.com"}`))

		cases := []struct {
			name  string
			input string
			sig   []byte
			pub   any
			valid bool
		}{
			{"valid", compact[:dot], sig, pair[0].Public(), true},
			{"flipped signature bit", compact[:dot], flipped, pair[0].Public(), false},
			{"truncated signature", compact[:dot], sig[:len(sig)-1], pair[0].Public(), false},
			{"zero-padded signature", compact[:dot], padded, pair[0].Public(), false},
			{"empty signature", compact[:dot], nil, pair[0].Public(), false},
			{"other payload", otherInput, sig, pair[0].Public(), false},
			{"other key", compact[:dot], sig, pair[1].Public(), false},
		}
		for _, c := range cases {
			t.Run(alg+"/"+c.name, func(t *testing.T) {
				ours := verifySignature(c.pub, alg, []byte(c.input), c.sig)
				theirs := goJoseVerify(t, alg, c.input+"."+base64.RawURLEncoding.EncodeToString(c.sig), c.pub)
				if (ours == nil) != c.valid {
					t.Errorf("verifySignature: got %v, want valid=%v", ours, c.valid)
				}
				if (ours == nil) != (theirs == nil) {
					t.Errorf("verifySignature says %v, go-jose says %v: they must agree", ours, theirs)
				}
			})
		}
	}
}

// TestVerifySignatureRefusesMismatchedKeys covers what candidates already
// prevents (a key used for an algorithm of another family or curve), and
// unknown algorithms.
func TestVerifySignatureRefusesMismatchedKeys(t *testing.T) {
	rsaKey := genRSA(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	sig64 := make([]byte, 64)
	for _, c := range []struct {
		name string
		pub  any
		alg  string
	}{
		{"rsa key, ES256", &rsaKey.PublicKey, "ES256"},
		{"rsa key, EdDSA", &rsaKey.PublicKey, "EdDSA"},
		{"P-256 key, ES384", &p256.PublicKey, "ES384"},
		{"P-256 key, RS256", &p256.PublicKey, "RS256"},
		{"ed25519 key, ES256", edPub, "ES256"},
		{"ed25519 key, RS256", edPub, "RS256"},
		{"HS256", &rsaKey.PublicKey, "HS256"},
		{"none", &rsaKey.PublicKey, "none"},
		{"empty alg", &rsaKey.PublicKey, ""},
		{"unknown key type", "not a key", "RS256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := verifySignature(c.pub, c.alg, []byte("a.b"), sig64); err == nil {
				t.Errorf("got nil error, want a refusal")
			}
		})
	}
}

func genRSA(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func goJoseVerify(t *testing.T, alg, compact string, pub any) error {
	t.Helper()
	obj, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return err
	}
	_, err = obj.Verify(pub)
	return err
}
