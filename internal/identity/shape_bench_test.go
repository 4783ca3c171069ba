package identity

import (
	"encoding/json"
	"testing"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/devissuer"
)

// BenchmarkShape measures the CI-shape check Verify runs on every token.
func BenchmarkShape(b *testing.B) {
	for _, bc := range []struct {
		kind   Kind
		claims map[string]any
	}{
		{KindGitLab, devissuer.GitLabClaims("https://gitlab.example.com", devissuer.GitLabOptions{})},
		{KindGitHub, devissuer.GitHubClaims("https://token.actions.githubusercontent.com", devissuer.GitHubOptions{})},
		{KindKubernetes, devissuer.KubernetesClaims("https://kubernetes.default.svc", devissuer.KubernetesOptions{})},
	} {
		b.Run(string(bc.kind), func(b *testing.B) {
			raw, err := json.Marshal(bc.claims)
			if err != nil {
				b.Fatal(err)
			}
			claims, err := decodeClaims(raw)
			if err != nil {
				b.Fatal(err)
			}
			k := cikind.Of(string(bc.kind)) // resolved once per issuer, as Verify does
			if p := k.ShapeProblem(claims); p != "" {
				b.Fatalf("got problem %q, want none", p)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = k.ShapeProblem(claims)
			}
		})
	}
}
