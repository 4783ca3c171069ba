package devissuer_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/devissuer"
)

// The templates are tested with their kinds in internal/cikind; these
// tests cover the dev issuer's names for them.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestClaimsEveryKind(t *testing.T) {
	for _, kind := range cikind.Names() {
		t.Run(kind, func(t *testing.T) {
			c, err := devissuer.Claims(kind, "https://ci.example.com", devissuer.Options{Now: t0, JTI: "j"})
			if err != nil {
				t.Fatalf("got error %v, want claims", err)
			}
			if c["iss"] != "https://ci.example.com" || c["iat"] != t0.Unix() {
				t.Errorf("got iss %v, iat %v, want the issuer and t0", c["iss"], c["iat"])
			}
			if jti, ok := c["jti"]; ok && jti != "j" {
				t.Errorf("got jti %v, want the option", jti)
			}
			if p := cikind.Lookup(kind).ShapeProblem(c); p != "" {
				t.Errorf("got shape problem %q, want a %s CI token", p, kind)
			}
		})
	}
	if _, err := devissuer.Claims("jenkins", "https://ci.example.com", devissuer.Options{}); err == nil {
		t.Error("got no error for an unknown kind, want one")
	}
}

func TestKindClaimsWrappers(t *testing.T) {
	gl := devissuer.GitLabOptions{Now: t0, JTI: "j", PipelineID: "2", JobID: "3", SHA: "abc"}
	gh := devissuer.GitHubOptions{Now: t0, JTI: "j", RunID: "2", SHA: "abc"}
	k8s := devissuer.KubernetesOptions{Now: t0, JTI: "j", ServiceAccountUID: "s", PodUID: "p"}
	tests := []struct {
		name      string
		got, want map[string]any
	}{
		{"gitlab", devissuer.GitLabClaims("https://gitlab.example.com", gl), cikind.GitLabClaims("https://gitlab.example.com", gl)},
		{"github", devissuer.GitHubClaims("https://gh.example.com", gh), cikind.GitHubClaims("https://gh.example.com", gh)},
		{"kubernetes", devissuer.KubernetesClaims("https://k8s.example.com", k8s), cikind.KubernetesClaims("https://k8s.example.com", k8s)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if aud := tt.got["aud"]; aud != devissuer.DefaultAudience && !cmp.Equal(aud, []string{devissuer.DefaultAudience}) {
				t.Errorf("got aud %v, want %s", aud, devissuer.DefaultAudience)
			}
		})
	}
}
