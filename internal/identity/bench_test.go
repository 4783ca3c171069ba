package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

// BenchmarkVerify measures the hot path: a GitLab token whose issuer's
// keys are already cached, verified from parallel goroutines.
// "cached-keys" is RS256 (RSA-2048), GitLab's algorithm; the "replay"
// variant adds the jti check (one use per token would make every
// iteration after the first a rejection, so it allows b.N uses);
// "es256-cached-keys" is the same token signed with ES256 (P-256) and
// verified with a static key.
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name   string
		es256  bool
		replay bool
	}{{"cached-keys", false, false}, {"cached-keys+replay", false, true}, {"es256-cached-keys", true, false}} {
		b.Run(bc.name, func(b *testing.B) {
			var v *identity.Verifier
			var tok string
			if bc.es256 {
				v, tok = es256Verifier(b)
			} else {
				idp := newIdP(b, "rsa1.pem")
				is := idp.issuer()
				if bc.replay {
					is.ReplayMaxUses = b.N + 1
				}
				v = newVerifier(b, testutil.NewClock(t0), nil, is)
				tok = idp.sign(b, idp.gitlabClaims())
			}
			if _, err := v.Verify(context.Background(), tok); err != nil { // warm the key cache
				b.Fatal(err)
			}
			b.ReportAllocs()
			defer reportCPU(b)()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per op as cpu-ns/op. On a shared machine, time
// stolen by other tenants inflates ns/op but not CPU time, and CPU time
// includes the GC work that allocations cause on other threads.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

// es256Verifier returns a verifier trusting a static P-256 key, and a
// GitLab token signed with it.
func es256Verifier(b *testing.B) (*identity.Verifier, string) {
	b.Helper()
	const url = "https://gitlab.example.com" // never contacted: the key is static
	ecKey := newECKey(b)
	iss, err := devissuer.NewFromKey(url, loadKey(b, "rsa1.pem"))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := iss.SignWith(devissuer.GitLabClaims(url, devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}}),
		devissuer.SignOptions{Alg: "ES256", Key: ecKey})
	if err != nil {
		b.Fatal(err)
	}
	v := newVerifier(b, testutil.NewClock(t0), nil, identity.Issuer{
		Name: "gitlab", Kind: identity.KindGitLab, URL: url, Audiences: []string{testAudience}, Algorithms: []string{"ES256"},
		PublicKeys: []string{pkixPEM(b, &ecKey.PublicKey)},
	})
	return v, tok
}

// BenchmarkSignatureCheck isolates the signature step of Verify, after
// the parse both variants share: "go-jose" is what checkSignature runs
// (go-jose rebuilds the signing input from the decoded header and
// payload, re-reads the protected header, then verifies); "direct"
// hashes the token's own signing input and calls crypto/rsa or
// crypto/ecdsa, the floor any verifier pays. The difference is what a
// hand-written verifier could save (docs/benchmarks.md, "JWT signature
// path"). Serial: ns/op is the token's own CPU time, cpu-ns/op adds the
// GC work its allocations cause.
func BenchmarkSignatureCheck(b *testing.B) {
	rsaKey := loadKey(b, "rsa1.pem")
	ecKey := newECKey(b)
	const url = "https://gitlab.example.com"
	iss, err := devissuer.NewFromKey(url, rsaKey)
	if err != nil {
		b.Fatal(err)
	}
	claims := devissuer.GitLabClaims(url, devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}})
	for _, c := range []struct {
		alg      string
		key, pub any
	}{{"RS256", rsaKey, &rsaKey.PublicKey}, {"ES256", ecKey, &ecKey.PublicKey}} {
		raw, err := iss.SignWith(claims, devissuer.SignOptions{Alg: c.alg, Key: c.key})
		if err != nil {
			b.Fatal(err)
		}
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(c.alg)})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.alg+"/go-jose", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if err := tok.Claims(c.pub); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.alg+"/direct", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if err := verifyDirect(raw, c.pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// verifyDirect checks an RS256 or ES256 compact JWS over its own signing
// input, for BenchmarkSignatureCheck only.
func verifyDirect(raw string, pub any) error {
	dot := strings.LastIndexByte(raw, '.')
	var buf [512]byte
	n, err := base64.RawURLEncoding.Strict().Decode(buf[:], []byte(raw[dot+1:]))
	if err != nil {
		return err
	}
	sig, sum := buf[:n], sha256.Sum256([]byte(raw[:dot]))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig)
	case *ecdsa.PublicKey:
		if len(sig) != 64 || !ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return errors.New("ecdsa signature failed to verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported key %T", pub)
}

// BenchmarkSummary measures the identity summary recorded with every
// lease and audit event, for each CI kind with claims of its own shape.
func BenchmarkSummary(b *testing.B) {
	for _, bc := range []struct {
		kind   identity.Kind
		claims map[string]any
	}{
		{identity.KindGitLab, devissuer.GitLabClaims("https://gitlab.example.com", devissuer.GitLabOptions{Now: t0})},
		{identity.KindGitHub, devissuer.GitHubClaims("https://token.actions.githubusercontent.com", devissuer.GitHubOptions{Now: t0})},
		{identity.KindKubernetes, devissuer.KubernetesClaims("https://kubernetes.default.svc", devissuer.KubernetesOptions{Now: t0})},
	} {
		b.Run(string(bc.kind), func(b *testing.B) {
			// Round-trip through JSON so the claims have the types Verify
			// produces (int64 numbers, []any, map[string]any).
			raw, err := json.Marshal(bc.claims)
			if err != nil {
				b.Fatal(err)
			}
			var claims map[string]any
			if err := json.Unmarshal(raw, &claims); err != nil {
				b.Fatal(err)
			}
			id := &identity.Identity{Kind: bc.kind, IssuerURL: "https://issuer.example.com", Subject: "s", Claims: claims}
			if id.Summary().Subject != "s" {
				b.Fatal("got an empty summary")
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = id.Summary()
			}
		})
	}
}
