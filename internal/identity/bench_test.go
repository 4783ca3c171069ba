package identity_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
)

// BenchmarkVerify measures the hot path: an RS256 (RSA-2048) GitLab token
// whose issuer's keys are already cached, verified from parallel
// goroutines. The "replay" variant adds the jti check (one use per token
// would make every iteration after the first a rejection, so it allows
// b.N uses).
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name   string
		replay bool
	}{{"cached-keys", false}, {"cached-keys+replay", true}} {
		b.Run(bc.name, func(b *testing.B) {
			idp := newIdP(b, "rsa1.pem")
			is := idp.issuer()
			if bc.replay {
				is.ReplayMaxUses = b.N + 1
			}
			v := newVerifier(b, newClock(t0), nil, is)
			tok := idp.sign(b, idp.gitlabClaims())
			if _, err := v.Verify(context.Background(), tok); err != nil { // warm the key cache
				b.Fatal(err)
			}
			b.ReportAllocs()
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
