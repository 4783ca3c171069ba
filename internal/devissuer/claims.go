package devissuer

import (
	"fmt"

	"github.com/keyferry/keyferry/internal/cikind"
)

// The token templates live with their CI kind in internal/cikind; these
// names keep the dev issuer's API.

// GitLabOptions shape a GitLab CI ID token; see cikind.GitLabOptions.
type GitLabOptions = cikind.GitLabOptions

// GitHubOptions shape a GitHub Actions OIDC token; see
// cikind.GitHubOptions.
type GitHubOptions = cikind.GitHubOptions

// KubernetesOptions shape a bound service-account token; see
// cikind.KubernetesOptions.
type KubernetesOptions = cikind.KubernetesOptions

// Options shape a token of any kind; see cikind.DevOptions.
type Options = cikind.DevOptions

// GitLabClaims returns the claims of a GitLab CI ID token issued by iss,
// with GitLab's JSON types: ids and booleans are strings, runner_id is an
// int, times are integer seconds.
func GitLabClaims(iss string, o GitLabOptions) map[string]any { return cikind.GitLabClaims(iss, o) }

// GitHubClaims returns the claims of a GitHub Actions OIDC token issued by
// iss (normally https://token.actions.githubusercontent.com). All ids are
// strings; sub follows GitHub's default template: environment, then
// pull_request, then ref.
func GitHubClaims(iss string, o GitHubOptions) map[string]any { return cikind.GitHubClaims(iss, o) }

// KubernetesClaims returns the claims of a Kubernetes bound
// service-account token issued by iss. aud is always an array, as the
// kube-apiserver emits it; nbf equals iat.
func KubernetesClaims(iss string, o KubernetesOptions) map[string]any {
	return cikind.KubernetesClaims(iss, o)
}

// Claims returns the claims of a token of the CI kind called kind (one of
// cikind.Names) issued by iss, shaped by the kind's template.
func Claims(kind, iss string, o Options) (map[string]any, error) {
	k := cikind.Lookup(kind)
	if k == nil {
		return nil, fmt.Errorf("devissuer: unknown kind %q (want %s)", kind, cikind.NameList())
	}
	return k.DevClaims(iss, o), nil
}
