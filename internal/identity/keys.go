package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// supportedAlgorithms lists every signature algorithm an issuer may allow,
// in the order of their algSet bits.
var supportedAlgorithms = [...]string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// algSet is a bit set over supportedAlgorithms.
type algSet uint16

const (
	algsRSA  algSet = 0b111111 // RS* and PS*
	algES256 algSet = 1 << 6
	algES384 algSet = 1 << 7
	algES512 algSet = 1 << 8
	algEdDSA algSet = 1 << 9
)

// algBit returns the bit of alg, or 0 for an unsupported algorithm.
func algBit(alg string) algSet {
	for i, a := range supportedAlgorithms {
		if a == alg {
			return 1 << i
		}
	}
	return 0
}

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// maxKeysPerSet bounds how many keys of one JWKS are kept.
const maxKeysPerSet = 100

// verificationKey is one public key usable for signature verification.
type verificationKey struct {
	kid  string
	algs algSet // algorithms this key may verify
	pub  any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable set of verification keys.
type keySet struct {
	keys []verificationKey
	// fetchedAt and expiresAt are zero for static keys, which never expire.
	fetchedAt time.Time
	expiresAt time.Time
}

// maxCandidates bounds how many keys one token's signature is tried
// against (only kid-less keys can produce more than one candidate).
const maxCandidates = 4

// candidates returns the keys a token with kid and algorithm bit alg may be
// verified with, appended to dst. Keys whose kid equals the token's are
// preferred; keys without a kid (PEM keys) are used when none match. A
// token without a kid is accepted only when exactly one key is usable.
func (s *keySet) candidates(dst []*verificationKey, kid string, alg algSet) []*verificationKey {
	if s == nil {
		return dst
	}
	if kid == "" {
		var only *verificationKey
		for i := range s.keys {
			if s.keys[i].algs&alg != 0 {
				if only != nil {
					return dst // ambiguous: several usable keys and no kid
				}
				only = &s.keys[i]
			}
		}
		if only != nil {
			dst = append(dst, only)
		}
		return dst
	}
	for i := range s.keys {
		if k := &s.keys[i]; k.kid == kid && k.algs&alg != 0 && len(dst) < maxCandidates {
			dst = append(dst, k)
		}
	}
	if len(dst) > 0 {
		return dst
	}
	for i := range s.keys {
		if k := &s.keys[i]; k.kid == "" && k.algs&alg != 0 && len(dst) < maxCandidates {
			dst = append(dst, k)
		}
	}
	return dst
}

// keyAlgorithms returns the algorithms a public key can verify, or an error
// for key types and sizes that are not accepted.
func keyAlgorithms(pub any) (algSet, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.E == 0 {
			return 0, errors.New("incomplete RSA key")
		}
		if bits := k.N.BitLen(); bits < minRSABits {
			return 0, fmt.Errorf("RSA key of %d bits is too small (minimum %d)", bits, minRSABits)
		}
		return algsRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return algES256, nil
		case elliptic.P384():
			return algES384, nil
		case elliptic.P521():
			return algES512, nil
		}
		return 0, errors.New("unsupported elliptic curve")
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, errors.New("invalid Ed25519 key")
		}
		return algEdDSA, nil
	}
	return 0, fmt.Errorf("unsupported key type %T", pub)
}

// newVerificationKey checks pub and restricts it to jwkAlg when set.
func newVerificationKey(kid, jwkAlg string, pub any) (verificationKey, error) {
	algs, err := keyAlgorithms(pub)
	if err != nil {
		return verificationKey{}, err
	}
	if jwkAlg != "" {
		bit := algBit(jwkAlg)
		if bit&algs == 0 {
			return verificationKey{}, fmt.Errorf("key algorithm %q does not fit the key type", jwkAlg)
		}
		algs = bit
	}
	return verificationKey{kid: kid, algs: algs, pub: pub}, nil
}

// parseJWKS parses a JWK Set document. Keys whose use is not "sig" are
// silently skipped; keys that cannot be used for signature verification
// (symmetric keys, unsupported types or sizes) are skipped and reported in
// skipped; err is set only when the document itself is unreadable.
func parseJWKS(doc []byte) (keys []verificationKey, skipped []error, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, nil, fmt.Errorf("parse jwks: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New("parse jwks: no \"keys\" array")
	}
	for i, raw := range set.Keys {
		if len(keys) == maxKeysPerSet {
			skipped = append(skipped, fmt.Errorf("keys beyond the first %d ignored", maxKeysPerSet))
			break
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue // an encryption key: not an error, just not ours to use
		}
		pub := jwk.Public() // drops private material if an IdP publishes it by mistake
		k, err := newVerificationKey(jwk.KeyID, jwk.Algorithm, pub.Key)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, jwk.KeyID, err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

// parsePEMKeys parses one or more PEM blocks of type "PUBLIC KEY" (PKIX:
// RSA, EC or Ed25519) or "RSA PUBLIC KEY" (PKCS #1).
func parsePEMKeys(data []byte) ([]verificationKey, error) {
	var keys []verificationKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			return nil, fmt.Errorf("unsupported PEM block %q (want PUBLIC KEY or RSA PUBLIC KEY)", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		k, err := newVerificationKey("", "", pub)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("unexpected data after the last PEM block")
	}
	return keys, nil
}

// parseStaticKeys parses an issuer's public_keys entries: each is PEM or a
// JWKS JSON document. Every problem is reported, with the entry's index.
func parseStaticKeys(entries []string) ([]verificationKey, error) {
	var keys []verificationKey
	var errs []error
	for i, e := range entries {
		trimmed := strings.TrimSpace(e)
		if strings.HasPrefix(trimmed, "{") {
			ks, skipped, err := parseJWKS([]byte(trimmed))
			if err != nil {
				errs = append(errs, fmt.Errorf("public_keys[%d]: %w", i, err))
				continue
			}
			for _, s := range skipped {
				errs = append(errs, fmt.Errorf("public_keys[%d]: %w", i, s))
			}
			keys = append(keys, ks...)
			continue
		}
		ks, err := parsePEMKeys([]byte(trimmed))
		if err != nil {
			errs = append(errs, fmt.Errorf("public_keys[%d]: %w", i, err))
			continue
		}
		keys = append(keys, ks...)
	}
	return keys, errors.Join(errs...)
}
