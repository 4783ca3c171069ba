package cikind_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/cikind"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// verified returns claims as a verifier sees them: through JSON, with
// integral numbers as int64.
func verified(t *testing.T, claims map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return ints(v).(map[string]any)
}

func ints(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = ints(e)
		}
	case []any:
		for i, e := range t {
			t[i] = ints(e)
		}
	}
	return v
}

func TestRegistry(t *testing.T) {
	names := cikind.Names()
	if len(names) < 2 || names[len(names)-1] != cikind.Generic {
		t.Fatalf("got kinds %v, want several, generic last", names)
	}
	issuerName := regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	seen := map[string]bool{}
	for i, k := range cikind.All() {
		if k.Name() != names[i] {
			t.Errorf("got All()[%d] %q, want Names()[%d] %q", i, k.Name(), i, names[i])
		}
		if !issuerName.MatchString(k.Name()) || seen[k.Name()] {
			t.Errorf("got kind name %q, want a unique lower-case word", k.Name())
		}
		seen[k.Name()] = true
		if got := cikind.Lookup(k.Name()); got != k {
			t.Errorf("got Lookup(%q) %v, want the listed kind", k.Name(), got)
		}
	}
	for _, name := range []string{"", "jenkins", "GitLab", "gitlab "} {
		if got := cikind.Lookup(name); got != nil {
			t.Errorf("got Lookup(%q) %v, want nil", name, got)
		}
		if got := cikind.Of(name); got != cikind.Lookup(cikind.Generic) {
			t.Errorf("got Of(%q) %v, want generic", name, got)
		}
	}
	want := strings.Join(names[:len(names)-1], ", ") + " or " + cikind.Generic
	if got := cikind.NameList(); got != want {
		t.Errorf("got NameList %q, want %q", got, want)
	}
	all := cikind.All()
	all[0] = nil
	if cikind.All()[0] == nil {
		t.Error("got a shared kind list, want a fresh one per call")
	}
}

// placeholderRE finds the placeholders of a session-name template.
var placeholderRE = regexp.MustCompile(`\{([^{}]+)\}`)

// TestKindDeclarations checks what every kind must declare, and that the
// claim names it uses elsewhere are among the claims it says it sends.
func TestKindDeclarations(t *testing.T) {
	for _, k := range cikind.All() {
		t.Run(k.Name(), func(t *testing.T) {
			known := k.KnownClaims()
			isKnown := func(key string) bool {
				first, _, _ := strings.Cut(strings.TrimPrefix(key, "/"), "/")
				if !strings.HasPrefix(key, "/") {
					first = key
				}
				return known == nil || known[first]
			}
			if k.MaxTokenAge() <= 0 {
				t.Errorf("got max token age %v, want > 0", k.MaxTokenAge())
			}
			if len(k.Bindings()) == 0 || k.BindingHint() == "" {
				t.Errorf("got bindings %v and hint %q, want both", k.Bindings(), k.BindingHint())
			}
			for _, b := range k.Bindings() {
				if !isKnown(b.Key) {
					t.Errorf("got binding key %q, want a known claim", b.Key)
				}
				if b.Doc == "" || b.Rule.Form < cikind.Exact || b.Rule.Form > cikind.LiteralPrefix {
					t.Errorf("got binding %+v, want a doc and a rule form", b)
				}
				if r, ok := k.Binding(b.Key); !ok || r.Form != b.Rule.Form {
					t.Errorf("got Binding(%q) %+v, %v, want %+v", b.Key, r, ok, b.Rule)
				}
			}
			if _, ok := k.Binding("no-such-key"); ok {
				t.Error("got a rule for an unknown key, want none")
			}
			if !slices.Equal(k.BindingKeys(), bindingKeys(k)) {
				t.Errorf("got binding keys %v, want those of Bindings", k.BindingKeys())
			}
			perJob := append(k.PerJobClaims(), "jti", "lease_id")
			var usesPerJob bool
			for _, m := range placeholderRE.FindAllStringSubmatch(k.DefaultSessionName(), -1) {
				if m[1] != "lease_id" && !isKnown(m[1]) {
					t.Errorf("got session-name placeholder %q, want a known claim", m[1])
				}
				usesPerJob = usesPerJob || slices.Contains(perJob, m[1])
			}
			if !usesPerJob {
				t.Errorf("got default session name %q, want one of %v in it", k.DefaultSessionName(), perJob)
			}
			for _, c := range k.PerJobClaims() {
				if !isKnown(c) {
					t.Errorf("got per-job claim %q, want a known claim", c)
				}
			}
			for _, c := range k.ClaimNames() {
				if k.IsObjectClaim(c) && !known[c] {
					t.Errorf("got object claim %q, want it known", c)
				}
			}
		})
	}
}

func bindingKeys(k *cikind.Kind) []string {
	var keys []string
	for _, b := range k.Bindings() {
		keys = append(keys, b.Key)
	}
	return keys
}

// TestDevTokens checks every kind's dev template against the kind's own
// declarations: its token is CI-shaped for the kind and no other, names
// only known claims, summarises to something, and follows the options.
func TestDevTokens(t *testing.T) {
	for _, k := range cikind.All() {
		t.Run(k.Name(), func(t *testing.T) {
			claims := verified(t, k.DevClaims("https://ci.example.com", cikind.DevOptions{
				Audience: []string{"https://keyferry.example.com"}, TTL: 10 * time.Minute, Now: t0, JTI: "jti-1",
			}))
			if p := k.ShapeProblem(claims); p != "" {
				t.Errorf("got shape problem %q, want none", p)
			}
			for _, other := range cikind.All() {
				if other != k && other.Name() != cikind.Generic && other.ShapeProblem(claims) == "" {
					t.Errorf("got a %s token accepted as %s, want a shape problem", k.Name(), other.Name())
				}
			}
			if known := k.KnownClaims(); known != nil {
				for c := range claims {
					if !known[c] {
						t.Errorf("got dev claim %q, want only known claims", c)
					}
				}
			}
			want := map[string]any{"iss": "https://ci.example.com", "iat": t0.Unix(), "exp": t0.Add(10 * time.Minute).Unix()}
			if known := k.KnownClaims(); known == nil || known["jti"] {
				want["jti"] = "jti-1" // only kinds whose tokens carry a jti
			}
			for name, want := range want {
				if got := claims[name]; got != want {
					t.Errorf("got %s %#v, want %#v", name, got, want)
				}
			}
			if aud := claims["aud"]; aud != "https://keyferry.example.com" && !slices.Equal(toStrings(aud), []string{"https://keyferry.example.com"}) {
				t.Errorf("got aud %#v, want the requested audience", aud)
			}
			if k.Name() != cikind.Generic && k.Summarize(claims) == (cikind.Summary{}) {
				t.Error("got an empty summary, want the job described")
			}
		})
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func TestShapeProblem(t *testing.T) {
	tests := []struct {
		name   string
		kind   string
		claims map[string]any
		want   string
	}{
		{name: "gitlab without job_id", kind: cikind.GitLab,
			claims: map[string]any{"sub": "project_path:g/p", "project_path": "g/p", "project_id": "1", "pipeline_id": "2"},
			want:   "this is not a gitlab CI token: it lacks job_id"},
		{name: "gitlab user-login token", kind: cikind.GitLab, claims: map[string]any{"sub": "1"},
			want: `this is not a gitlab CI token: it lacks sub starting with "project_path:", project_path, project_id, pipeline_id, job_id`},
		{name: "github ids of the wrong type", kind: cikind.GitHub,
			claims: map[string]any{"sub": "repo:o/r:ref:refs/heads/main", "repository": "o/r", "run_id": int64(7)},
			want:   "this is not a github CI token: it lacks run_id"},
		{name: "kubernetes without the object", kind: cikind.Kubernetes, claims: map[string]any{"sub": "system:serviceaccount:a:b"},
			want: "this is not a kubernetes CI token: it lacks kubernetes.io"},
		{name: "kubernetes without namespace and name", kind: cikind.Kubernetes,
			claims: map[string]any{"sub": "system:serviceaccount:a:b", "kubernetes.io": map[string]any{}},
			want:   "this is not a kubernetes CI token: it lacks kubernetes.io.namespace, kubernetes.io.serviceaccount.name"},
		{name: "generic without sub", kind: cikind.Generic, claims: map[string]any{}, want: "this is not a generic CI token: it lacks sub"},
		{name: "generic with sub", kind: cikind.Generic, claims: map[string]any{"sub": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cikind.Lookup(tt.kind).ShapeProblem(tt.claims); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKnownClaimsIsFresh(t *testing.T) {
	k := cikind.Lookup(cikind.GitLab)
	a := k.KnownClaims()
	delete(a, "sub")
	if !k.KnownClaims()["sub"] {
		t.Error("got a shared set, want a fresh one per call")
	}
	b := k.Bindings()
	b[0].Key = "changed"
	if k.Bindings()[0].Key == "changed" {
		t.Error("got shared bindings, want a copy")
	}
	if got := cikind.Lookup(cikind.Generic).KnownClaims(); got != nil {
		t.Errorf("got %v for generic, want nil (anything goes)", got)
	}
}
