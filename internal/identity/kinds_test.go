package identity_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/cikind"
	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

// TestVerifyEveryKind verifies a dev token of every registered kind on an
// issuer of that kind, and refuses tokens of the other CI kinds there.
func TestVerifyEveryKind(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	mint := func(t *testing.T, kind string) (string, map[string]any) {
		t.Helper()
		c, err := devissuer.Claims(kind, idp.srv.URL, devissuer.Options{Audience: []string{testAudience}, Now: t0})
		if err != nil {
			t.Fatal(err)
		}
		return idp.sign(t, c), c
	}
	for _, k := range cikind.All() {
		t.Run(k.Name(), func(t *testing.T) {
			is := idp.issuer()
			is.Name, is.Kind = k.Name(), identity.Kind(k.Name())
			if err := identity.ValidateIssuer(is); err != nil {
				t.Fatalf("got %v, want the issuer valid", err)
			}
			v := newVerifier(t, testutil.NewClock(t0), nil, is)
			tok, claims := mint(t, k.Name())
			id, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("got %v, want the %s token accepted", err, k.Name())
			}
			s := id.Summary()
			if id.Kind != is.Kind || s.Subject != claims["sub"] || s.Issuer != idp.srv.URL {
				t.Errorf("got kind %s, summary %+v, want kind %s, sub %v", id.Kind, s, is.Kind, claims["sub"])
			}
			if k.Name() != cikind.Generic && s.Project == "" && s.ProjectID == "" {
				t.Errorf("got summary %+v, want the project", s)
			}
			if k.Name() == cikind.Generic {
				return // every token with a sub is generic-shaped
			}
			for _, other := range cikind.Names() {
				if other == k.Name() || other == cikind.Generic {
					continue
				}
				tok, _ := mint(t, other)
				_, err := v.Verify(context.Background(), tok)
				wantCode(t, err, identity.CodeNotACIToken)
			}
		})
	}
}

func TestValidateIssuerListsEveryKind(t *testing.T) {
	is := identity.Issuer{Name: "ci", Kind: "jenkins", URL: "https://ci.example.com", Audiences: []string{testAudience}}
	err := identity.ValidateIssuer(is)
	if err == nil {
		t.Fatal("got no error for an unknown kind, want one")
	}
	for _, name := range cikind.Names() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("got %q, want it to list kind %s", err, name)
		}
	}
}
