package identity_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

// FuzzVerify feeds arbitrary strings to Verify. Properties:
//   - Verify never panics, and returns either an identity or an *Error;
//   - when it accepts an input, the identity equals the one of the
//     original valid token. Without the private key, the only accepted
//     inputs are that token itself (give or take surrounding whitespace):
//     strict base64url decoding leaves a JWT exactly one spelling, so a
//     mutation can never verify to different (or "the same but
//     re-spelled") claims.
//
// The issuer uses static keys, so no network is involved.
func FuzzVerify(f *testing.F) {
	const url = "https://gitlab.example.com"
	key := loadKey(f, "rsa1.pem")
	iss, err := devissuer.NewFromKey(url, key)
	if err != nil {
		f.Fatal(err)
	}
	der := pkixDER(f, &key.PublicKey)
	claims := devissuer.GitLabClaims(url, devissuer.GitLabOptions{
		Now: t0, Audience: []string{testAudience}, PipelineID: "1", JobID: "2", SHA: strings.Repeat("a", 40),
		JTI: "00000000-0000-4000-8000-000000000000",
	})
	valid, err := iss.Sign(claims)
	if err != nil {
		f.Fatal(err)
	}
	v := identity.NewVerifier(identity.Config{Now: testutil.NewClock(t0).Now})
	err = v.SetIssuers([]identity.Issuer{{
		Name: "gitlab", Kind: identity.KindGitLab, URL: url, Audiences: []string{testAudience},
		PublicKeys: []string{string(iss.JWKS()), pemBlock("PUBLIC KEY", der)},
		Algorithms: []string{"RS256", "PS256", "ES256", "EdDSA"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	want, err := v.Verify(context.Background(), valid)
	if err != nil {
		f.Fatalf("seed token: got %v, want accepted", err)
	}

	parts := strings.Split(valid, ".")
	none, _ := iss.SignWith(claims, devissuer.SignOptions{Alg: "none"})
	hs, _ := iss.SignWith(claims, devissuer.SignOptions{Alg: "HS256", Key: []byte(pemBlock("PUBLIC KEY", der))})
	noKid, _ := iss.SignWith(claims, devissuer.SignOptions{OmitKeyID: true})
	for _, seed := range []string{
		valid,
		" " + valid + "\n",
		noKid,
		valid[:len(valid)-1],
		valid + "A",
		parts[0] + "." + parts[1] + ".",
		parts[1] + "." + parts[0] + "." + parts[2],
		parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+url+`","exp":1e400}`)) + "." + parts[2],
		none,
		hs,
		"", ".", "..", "....", "a.b.c", "e30.e30.e30", "eyJ9.eyJ9.", strings.Repeat("A", 100),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Verify(context.Background(), raw)
		if err != nil {
			if got != nil {
				t.Fatalf("got identity %+v with error %v, want nil", got, err)
			}
			if identity.CodeOf(err) == "" {
				t.Fatalf("got error %v (%T), want an *identity.Error", err, err)
			}
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("accepted input %q with a different identity (-want +got):\n%s", raw, diff)
		}
	})
}
