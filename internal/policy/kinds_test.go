package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/identity"
)

// TestEveryKindBindsATenant runs the unbound rule and a whole decision for
// every registered kind: a role matching the kind's first binding key with
// the value of a dev token compiles and allows that token; without a
// match it is refused as unbound, naming every binding key.
func TestEveryKindBindsATenant(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, k := range cikind.All() {
		t.Run(k.Name(), func(t *testing.T) {
			kind := identity.Kind(k.Name())
			raw, err := json.Marshal(k.DevClaims("https://ci.example.com", cikind.DevOptions{Now: t0}))
			if err != nil {
				t.Fatal(err)
			}
			var claims map[string]any
			if err := json.Unmarshal(raw, &claims); err != nil {
				t.Fatal(err)
			}
			key := k.BindingKeys()[0]
			path, err := parseClaimPath(key)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := lookup(claims, path)
			value, ok := scalarString(v)
			if !ok || value == "" {
				t.Fatalf("got %s = %#v in the dev token, want a scalar", key, v)
			}
			r := Role{Name: "deploy", Issuer: k.Name(), Match: map[string]Values{key: {escapeGlob(value)}},
				AWS: AWS{Type: TypeAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/deploy"}}
			c := mustCompile(t, r, kind)
			if res := c.Evaluate(claims); !res.Allowed {
				t.Errorf("got denied (%+v), want the dev token allowed", res.Checks)
			}
			out, err := c.Render(claims, map[string]string{VarLeaseID: "01HX0000000000000000000000"})
			if err != nil || len(out.SessionName) < 2 {
				t.Errorf("got session name %q, error %v, want a name", out.SessionName, err)
			}

			r.Match = map[string]Values{}
			_, err = Compile(r, kind)
			if err == nil {
				t.Fatal("got a role without a binding accepted, want it refused as unbound")
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 || !strings.HasPrefix(ps[0], "match: the role binds no tenant") {
				t.Fatalf("got problems %q, want one unbound problem", ps)
			}
			for _, key := range k.BindingKeys() {
				if !strings.Contains(ps[0], key) {
					t.Errorf("got %q, want it to suggest %s", ps[0], key)
				}
			}
			r.AllowUnbound = true
			mustCompile(t, r, kind)
		})
	}
}

// TestPathRule covers Path rules beyond the shapes today's kinds use:
// several prefixes and several segments.
func TestPathRule(t *testing.T) {
	twoPrefixes := cikind.Rule{Form: cikind.Path, Prefixes: []string{"a:", "b:"}, Sep: '/'}
	threeSegments := cikind.Rule{Form: cikind.Path, Prefixes: []string{"org/"}, Sep: '/', Segments: 3}
	noPrefix := cikind.Rule{Form: cikind.Path, Sep: ':'}
	tests := []struct {
		name  string
		rule  cikind.Rule
		value string
		want  string // part of the problem; "" when bound
	}{
		{"first prefix", twoPrefixes, "a:x/*", ""},
		{"second prefix", twoPrefixes, "b:x/*", ""},
		{"no prefix names the first", twoPrefixes, "*", "before the a: part"},
		{"second prefix, partial segment", twoPrefixes, "b:x*", "top-level segment"},
		{"three segments", threeSegments, "org/o/project/p/*", ""},
		{"three segments, exact", threeSegments, "org/o/project/p/user/u", ""},
		{"two segments", threeSegments, "org/o/project/*", "first 3 segments"},
		{"partial third segment", threeSegments, "org/o/project/p*", "first 3 segments"},
		{"empty segment", threeSegments, "org//project/p/*", "first 3 segments"},
		{"no prefix", noPrefix, "ns:*", ""},
		{"no prefix, leading wildcard", noPrefix, "*:x", "top-level segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := compileGlob(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			got := ruleProblem(tt.rule, &g)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
