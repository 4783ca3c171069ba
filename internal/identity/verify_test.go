package identity_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/testutil"
)

func TestVerifyAcceptsGitLabToken(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	v := newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	claims := devissuer.GitLabClaims(idp.srv.URL, devissuer.GitLabOptions{
		ProjectPath: "acme/infra", ProjectID: "42", PipelineID: "574", JobID: "302",
		UserLogin: "alice", Audience: []string{testAudience}, Now: t0, JTI: "235b3a54-b797-4f5a-9c1e-000000000001",
	})
	got, err := v.Verify(context.Background(), idp.sign(t, claims))
	if err != nil {
		t.Fatalf("Verify: got error %v, want nil", err)
	}
	if got.Issuer != "gitlab" || got.IssuerURL != idp.srv.URL || got.Kind != identity.KindGitLab {
		t.Errorf("got issuer %q/%q/%q, want gitlab/%s/gitlab", got.Issuer, got.IssuerURL, got.Kind, idp.srv.URL)
	}
	if want := "project_path:acme/infra:ref_type:branch:ref:main"; got.Subject != want {
		t.Errorf("got subject %q, want %q", got.Subject, want)
	}
	if diff := cmp.Diff([]string{testAudience}, got.Audience); diff != "" {
		t.Errorf("audience (-want +got):\n%s", diff)
	}
	if got.JTI != "235b3a54-b797-4f5a-9c1e-000000000001" {
		t.Errorf("got jti %q, want the token's", got.JTI)
	}
	if !got.IssuedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("got iat %v exp %v, want %v and %v", got.IssuedAt, got.ExpiresAt, t0, t0.Add(time.Hour))
	}
	if v, ok := got.Claims["runner_id"].(int64); !ok || v != 1 {
		t.Errorf("got runner_id %#v, want int64(1)", got.Claims["runner_id"])
	}
	if v, ok := got.Claims["iat"].(int64); !ok || v != t0.Unix() {
		t.Errorf("got iat claim %#v, want int64(%d)", got.Claims["iat"], t0.Unix())
	}
	wantSummary := identity.Summary{Issuer: idp.srv.URL, Subject: got.Subject, Project: "acme/infra", ProjectID: "42",
		Ref: "main", Pipeline: "574", Job: "302", User: "alice"}
	if diff := cmp.Diff(wantSummary, got.Summary()); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
}

func TestVerifySuccessReturnsNilError(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	v := newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	id, err := v.Verify(context.Background(), idp.sign(t, idp.gitlabClaims())+"\n")
	if err != nil || id == nil {
		t.Fatalf("got (%v, %v), want an identity and a nil error interface (trailing newline is trimmed)", id, err)
	}
}

// segment replaces part i (0 header, 1 payload, 2 signature) of tok.
func segment(tok string, i int, s string) string {
	parts := strings.Split(tok, ".")
	parts[i] = s
	return strings.Join(parts, ".")
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerifyRejections(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	attacker := loadKey(t, "rsa2.pem")
	attackerJWK, err := json.Marshal(jose.JSONWebKey{Key: &attacker.PublicKey, Algorithm: "RS256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := []byte(pkixPEM(t, idp.iss.PublicKey()))
	with := func(mod func(c map[string]any)) string {
		c := idp.gitlabClaims()
		mod(c)
		return idp.sign(t, c)
	}
	valid := idp.sign(t, idp.gitlabClaims())

	tests := []struct {
		name   string
		issuer func(*identity.Issuer)
		now    time.Time // zero: t0
		token  func() string
		want   string // "" means accepted
	}{
		{name: "valid", token: func() string { return valid }},
		{name: "missing", token: func() string { return "" }, want: identity.CodeTokenMissing},
		{name: "only whitespace", token: func() string { return " \n\t" }, want: identity.CodeTokenMissing},
		{name: "oversized", want: identity.CodeTokenTooLarge, token: func() string {
			return with(func(c map[string]any) { c["padding"] = strings.Repeat("x", identity.MaxTokenLen) })
		}},
		{name: "JWE (5 segments)", want: identity.CodeTokenEncrypted, token: func() string {
			return b64json(map[string]string{"alg": "RSA-OAEP", "enc": "A256GCM"}) + ".a2V5.aXY.Y2lwaGVy.dGFn"
		}},
		{name: "garbage", token: func() string { return "this is not a token" }, want: identity.CodeTokenMalformed},
		{name: "two segments", token: func() string { return "eyJhbGciOiJSUzI1NiJ9.e30" }, want: identity.CodeTokenMalformed},
		{name: "four segments", token: func() string { return valid + ".x" }, want: identity.CodeTokenMalformed},
		{name: "non-base64url characters", token: func() string { return segment(valid, 1, "e30=") }, want: identity.CodeTokenMalformed},
		{name: "header not JSON", token: func() string { return segment(valid, 0, "bm90IGpzb24") }, want: identity.CodeTokenMalformed},
		{name: "payload not JSON", token: func() string { return segment(valid, 1, "bm90IGpzb24") }, want: identity.CodeTokenMalformed},
		{name: "payload is an array", token: func() string { return segment(valid, 1, b64json([]int{1})) }, want: identity.CodeTokenMalformed},
		{name: "payload with trailing data", want: identity.CodeTokenMalformed, token: func() string {
			return segment(valid, 1, base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x"} {}`)))
		}},
		{name: "unknown issuer", want: identity.CodeUnknownIssuer, token: func() string {
			return with(func(c map[string]any) { c["iss"] = "https://gitlab.evil.example" })
		}},
		{name: "issuer differs by trailing slash", want: identity.CodeUnknownIssuer, token: func() string {
			return with(func(c map[string]any) { c["iss"] = idp.srv.URL + "/" })
		}},
		{name: "no issuer", want: identity.CodeUnknownIssuer, token: func() string {
			return with(func(c map[string]any) { delete(c, "iss") })
		}},
		{name: "alg none", want: identity.CodeUnsupportedAlgorithm, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Alg: "none"})
		}},
		{name: "HS256 with the RSA public key as secret", want: identity.CodeUnsupportedAlgorithm, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Alg: "HS256", Key: pubPEM})
		}},
		{name: "RS384 when only RS256 is allowed", want: identity.CodeUnsupportedAlgorithm, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Alg: "RS384"})
		}},
		{name: "jku header", want: identity.CodeForbiddenHeader, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Key: attacker,
				Headers: map[string]any{"jku": "https://attacker.example/jwks"}})
		}},
		{name: "x5u header", want: identity.CodeForbiddenHeader, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Key: attacker,
				Headers: map[string]any{"x5u": "https://attacker.example/cert.pem"}})
		}},
		{name: "embedded jwk header", want: identity.CodeForbiddenHeader, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Key: attacker, OmitKeyID: true,
				Headers: map[string]any{"jwk": json.RawMessage(attackerJWK)}})
		}},
		{name: "x5c header", want: identity.CodeForbiddenHeader, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Key: attacker,
				Headers: map[string]any{"x5c": []string{"MIIB"}}})
		}},
		{name: "crit header", want: identity.CodeForbiddenHeader, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{
				Headers: map[string]any{"crit": []string{"exp"}, "exp": 1}})
		}},
		{name: "signed by another key under the issuer's kid", want: identity.CodeSignatureInvalid, token: func() string {
			return idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Key: attacker})
		}},
		{name: "tampered payload", want: identity.CodeSignatureInvalid, token: func() string {
			c := idp.gitlabClaims()
			c["project_id"] = "1337"
			return segment(valid, 1, b64json(c))
		}},
		{name: "truncated signature", want: identity.CodeSignatureInvalid, token: func() string {
			sig, _ := base64.RawURLEncoding.DecodeString(strings.Split(valid, ".")[2])
			return segment(valid, 2, base64.RawURLEncoding.EncodeToString(sig[:len(sig)-1]))
		}},
		{name: "zero signature", want: identity.CodeSignatureInvalid, token: func() string {
			return segment(valid, 2, base64.RawURLEncoding.EncodeToString(make([]byte, 256)))
		}},
		{name: "signature re-spelled with non-zero padding bits", want: identity.CodeTokenMalformed, token: func() string {
			// 256 bytes encode to 342 characters whose last one carries 4
			// unused bits; lenient decoders accept any value there.
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, valid[len(valid)-1])
			return valid[:len(valid)-1] + string(alphabet[last|1])
		}},
		{name: "signature not base64url", want: identity.CodeTokenMalformed, token: func() string {
			return segment(valid, 2, "A")
		}},
		{name: "expired", now: t0.Add(time.Hour + 31*time.Second), token: func() string { return valid }, want: identity.CodeTokenExpired},
		{name: "expired but within leeway", now: t0.Add(time.Hour + 29*time.Second), token: func() string { return valid }},
		{name: "not yet valid", want: identity.CodeTokenNotYetValid, token: func() string {
			return with(func(c map[string]any) { c["nbf"] = t0.Add(time.Minute).Unix() })
		}},
		{name: "nbf within leeway", token: func() string {
			return with(func(c map[string]any) { c["nbf"] = t0.Add(20 * time.Second).Unix() })
		}},
		{name: "issued in the future", want: identity.CodeTokenIssuedInFuture, token: func() string {
			return with(func(c map[string]any) { c["iat"] = t0.Add(5 * time.Minute).Unix() })
		}},
		{name: "too old", now: t0.Add(25 * time.Hour), want: identity.CodeTokenTooOld, token: func() string {
			return with(func(c map[string]any) { c["exp"] = t0.Add(48 * time.Hour).Unix() })
		}},
		{name: "older than a configured max_token_age", now: t0.Add(11 * time.Minute), want: identity.CodeTokenTooOld,
			issuer: func(is *identity.Issuer) { is.MaxTokenAge = dur.Duration(10 * time.Minute) },
			token:  func() string { return valid }},
		{name: "no exp", want: identity.CodeTokenMalformed, token: func() string {
			return with(func(c map[string]any) { delete(c, "exp") })
		}},
		{name: "exp not a number", want: identity.CodeTokenMalformed, token: func() string {
			return with(func(c map[string]any) { c["exp"] = "tomorrow" })
		}},
		{name: "exp beyond year 9999", want: identity.CodeTokenMalformed, token: func() string {
			return with(func(c map[string]any) { c["exp"] = 1e300 })
		}},
		{name: "no iat on a gitlab token", want: identity.CodeTokenMalformed, token: func() string {
			return with(func(c map[string]any) { delete(c, "iat") })
		}},
		{name: "wrong audience", want: identity.CodeAudienceMismatch, token: func() string {
			return with(func(c map[string]any) { c["aud"] = "https://vault.example.com" })
		}},
		{name: "no audience", want: identity.CodeAudienceMismatch, token: func() string {
			return with(func(c map[string]any) { delete(c, "aud") })
		}},
		{name: "audience of the wrong type", want: identity.CodeTokenMalformed, token: func() string {
			return with(func(c map[string]any) { c["aud"] = []any{testAudience, 7} })
		}},
		{name: "multiple audiences rejected", want: identity.CodeMultipleAudiences, token: func() string {
			return with(func(c map[string]any) { c["aud"] = []string{testAudience, "https://vault.example.com"} })
		}},
		{name: "multiple audiences allowed", issuer: func(is *identity.Issuer) { is.AllowMultipleAudiences = true },
			token: func() string {
				return with(func(c map[string]any) { c["aud"] = []string{"https://vault.example.com", testAudience} })
			}},
		{name: "multiple audiences allowed but none ours", want: identity.CodeAudienceMismatch,
			issuer: func(is *identity.Issuer) { is.AllowMultipleAudiences = true },
			token: func() string {
				return with(func(c map[string]any) { c["aud"] = []string{"https://a.example", "https://b.example"} })
			}},
		{name: "GitLab user-login ID token", want: identity.CodeNotACIToken, token: func() string {
			// Signed by the same JWKS as CI tokens (GitLab's instance OIDC key
			// is published next to the CI key), but not a job's identity.
			return idp.sign(t, map[string]any{
				"iss": idp.srv.URL, "sub": "1", "aud": testAudience, "iat": t0.Unix(), "exp": t0.Add(2 * time.Minute).Unix(),
				"auth_time": t0.Unix(), "sub_legacy": "2435223452345", "name": "Alice", "nickname": "alice",
				"preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
				"profile": idp.srv.URL + "/alice", "groups_direct": []string{"acme"},
			})
		}},
		{name: "gitlab token without job_id", want: identity.CodeNotACIToken, token: func() string {
			return with(func(c map[string]any) { delete(c, "job_id") })
		}},
		{name: "gitlab token with a non-project sub", want: identity.CodeNotACIToken, token: func() string {
			return with(func(c map[string]any) { c["sub"] = "job_302" })
		}},
		{name: "gitlab ids of the wrong type", want: identity.CodeNotACIToken, token: func() string {
			return with(func(c map[string]any) { c["pipeline_id"] = 574 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := idp.issuer()
			if tt.issuer != nil {
				tt.issuer(&is)
			}
			v := newVerifier(t, testutil.NewClock(orT0(tt.now)), nil, is)
			tok := tt.token()
			id, err := v.Verify(context.Background(), tok)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if id.Subject == "" {
					t.Errorf("got empty subject, want the token's")
				}
				return
			}
			if id != nil {
				t.Errorf("got identity %+v along with an error, want nil", id)
			}
			e := wantCode(t, err, tt.want)
			for _, part := range strings.Split(tok, ".") {
				if len(part) > 8 && strings.Contains(e.Message, part) {
					t.Errorf("got message %q echoing the token, want no token content", e.Message)
				}
			}
		})
	}
}

func TestVerifyKeyAlgorithmRestriction(t *testing.T) {
	// A JWK with "alg": "RS256" must not verify a PS256 token, even when
	// the issuer allows PS256 and the signature is valid for the key.
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.Algorithms = []string{"RS256", "PS256"}
	v := newVerifier(t, testutil.NewClock(t0), nil, is)
	ps := idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{Alg: "PS256"})
	_, err := v.Verify(context.Background(), ps)
	wantCode(t, err, identity.CodeUnknownKey)

	// The same key without an alg member verifies both.
	jwk := jose.JSONWebKey{Key: idp.iss.PublicKey(), KeyID: idp.iss.KeyID(), Use: "sig"}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	idp.setJWKS(b)
	v = newVerifier(t, testutil.NewClock(t0), nil, is)
	for _, tok := range []string{ps, idp.sign(t, idp.gitlabClaims())} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("got %v, want PS256 and RS256 accepted for a JWK without alg", err)
		}
	}
}

func TestVerifyTokenWithoutKid(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	noKid := idp.signWith(t, idp.gitlabClaims(), devissuer.SignOptions{OmitKeyID: true})

	v := newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	if _, err := v.Verify(context.Background(), noKid); err != nil {
		t.Fatalf("one key in the JWKS: got %v, want the token accepted", err)
	}

	other, err := devissuer.NewFromKey(idp.srv.URL, loadKey(t, "rsa2.pem"))
	if err != nil {
		t.Fatal(err)
	}
	idp.setJWKS(mergeJWKS(t, idp.iss.JWKS(), other.JWKS()))
	v = newVerifier(t, testutil.NewClock(t0), nil, idp.issuer())
	_, err = v.Verify(context.Background(), noKid)
	wantCode(t, err, identity.CodeUnknownKey)
}

func mergeJWKS(t testing.TB, sets ...[]byte) []byte {
	t.Helper()
	var all struct {
		Keys []json.RawMessage `json:"keys"`
	}
	for _, s := range sets {
		var one struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(s, &one); err != nil {
			t.Fatal(err)
		}
		all.Keys = append(all.Keys, one.Keys...)
	}
	b, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyGitHubShape(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.Name, is.Kind = "github", identity.KindGitHub
	claims := func(mod func(map[string]any)) string {
		c := devissuer.GitHubClaims(idp.srv.URL, devissuer.GitHubOptions{
			Repository: "octo-org/infra", RunID: "9001", RunAttempt: "2", Actor: "octocat",
			Audience: []string{testAudience}, Now: t0,
		})
		if mod != nil {
			mod(c)
		}
		return idp.sign(t, c)
	}
	tests := []shapeCase{
		{name: "valid", tok: claims(nil)},
		{name: "no run_id", tok: claims(func(c map[string]any) { delete(c, "run_id") }), want: identity.CodeNotACIToken},
		{name: "no repository", tok: claims(func(c map[string]any) { delete(c, "repository") }), want: identity.CodeNotACIToken},
		{name: "sub without repo prefix", tok: claims(func(c map[string]any) { c["sub"] = "octo-org/infra" }), want: identity.CodeNotACIToken},
		{name: "older than the 1h github default", now: t0.Add(61 * time.Minute),
			tok:  claims(func(c map[string]any) { c["exp"] = t0.Add(2 * time.Hour).Unix() }),
			want: identity.CodeTokenTooOld},
	}
	verifyShapes(t, is, tests, identity.Summary{Issuer: idp.srv.URL, Subject: "repo:octo-org/infra:ref:refs/heads/main", Project: "octo-org/infra",
		ProjectID: "1", Ref: "refs/heads/main", Pipeline: "9001", Job: "9001-2", User: "octocat"})
}

// orT0 is now, or t0 for the zero time.
func orT0(now time.Time) time.Time {
	if now.IsZero() {
		return t0
	}
	return now
}

// shapeCase is a token checked against a CI kind's shape at now (t0 when
// zero): refused with code want, or accepted when want is empty.
type shapeCase struct {
	name string
	now  time.Time
	tok  string
	want string
}

// verifyShapes runs the cases with a verifier trusting is; every accepted
// token's identity must sum up as summary.
func verifyShapes(t *testing.T, is identity.Issuer, tests []shapeCase, summary identity.Summary) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, testutil.NewClock(orT0(tt.now)), nil, is)
			id, err := v.Verify(context.Background(), tt.tok)
			if tt.want != "" {
				wantCode(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if diff := cmp.Diff(summary, id.Summary()); diff != "" {
				t.Errorf("summary (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyKubernetesShape(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.Name, is.Kind = "cluster", identity.KindKubernetes
	tok := func(o devissuer.KubernetesOptions, mod func(map[string]any)) string {
		o.Audience, o.Now = []string{testAudience}, t0
		c := devissuer.KubernetesClaims(idp.srv.URL, o)
		if mod != nil {
			mod(c)
		}
		return idp.sign(t, c)
	}
	tests := []shapeCase{
		{name: "valid", tok: tok(devissuer.KubernetesOptions{Namespace: "ci", ServiceAccount: "deployer", PodName: "runner-1"}, nil)},
		{name: "sub of a user", want: identity.CodeNotACIToken,
			tok: tok(devissuer.KubernetesOptions{}, func(c map[string]any) { c["sub"] = "admin" })},
		{name: "no kubernetes.io claim", want: identity.CodeNotACIToken,
			tok: tok(devissuer.KubernetesOptions{}, func(c map[string]any) { delete(c, "kubernetes.io") })},
		{name: "no service account name", want: identity.CodeNotACIToken,
			tok: tok(devissuer.KubernetesOptions{}, func(c map[string]any) {
				c["kubernetes.io"].(map[string]any)["serviceaccount"] = map[string]any{"uid": "x"}
			})},
		{name: "legacy extended token past warnafter", now: t0.Add(2 * time.Hour), want: identity.CodeTokenExpired,
			tok: tok(devissuer.KubernetesOptions{WarnAfter: t0.Add(time.Hour), TTL: 365 * 24 * time.Hour}, nil)},
		{name: "legacy extended token before warnafter", now: t0.Add(30 * time.Minute),
			tok: tok(devissuer.KubernetesOptions{Namespace: "ci", ServiceAccount: "deployer", PodName: "runner-1",
				WarnAfter: t0.Add(time.Hour), TTL: 365 * 24 * time.Hour}, nil)},
	}
	verifyShapes(t, is, tests, identity.Summary{Issuer: idp.srv.URL, Subject: "system:serviceaccount:ci:deployer", Project: "ci",
		User: "deployer", Job: "runner-1"})
}

func TestVerifyGenericIssuer(t *testing.T) {
	idp := newIdP(t, "rsa1.pem")
	is := idp.issuer()
	is.Name, is.Kind = "generic", identity.KindGeneric
	v := newVerifier(t, testutil.NewClock(t0), nil, is)
	base := func() map[string]any {
		return map[string]any{"iss": idp.srv.URL, "sub": "svc", "aud": testAudience, "exp": t0.Add(30 * time.Minute).Unix()}
	}
	tests := []struct {
		name   string
		mod    func(map[string]any)
		want   string
		wantAt time.Time
	}{
		{name: "no iat is allowed", mod: func(map[string]any) {}},
		{name: "no iat and valid for longer than max age", want: identity.CodeTokenTooOld,
			mod: func(c map[string]any) { c["exp"] = t0.Add(2 * time.Hour).Unix() }},
		{name: "fractional times", mod: func(c map[string]any) { c["iat"] = float64(t0.Unix()) - 0.5 },
			wantAt: t0.Add(-500 * time.Millisecond)},
		{name: "no sub", want: identity.CodeNotACIToken, mod: func(c map[string]any) { delete(c, "sub") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(c)
			id, err := v.Verify(context.Background(), idp.sign(t, c))
			if tt.want != "" {
				wantCode(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if !id.IssuedAt.Equal(tt.wantAt) {
				t.Errorf("got IssuedAt %v, want %v", id.IssuedAt, tt.wantAt)
			}
		})
	}
}

func TestVerifyStaticKeys(t *testing.T) {
	rsaKey := loadKey(t, "rsa1.pem")
	const url = "https://static.example.com" // never contacted
	iss, err := devissuer.NewFromKey(url, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := newECKey(t)
	claims := func() map[string]any {
		return devissuer.GitLabClaims(url, devissuer.GitLabOptions{Now: t0, Audience: []string{testAudience}})
	}
	sign := func(t *testing.T, opts devissuer.SignOptions) string {
		tok, err := iss.SignWith(claims(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name string
		keys func(t *testing.T) []string
		algs []string
		tok  func(t *testing.T) string
		want string
	}{
		{name: "PEM PUBLIC KEY, token with kid", keys: func(t *testing.T) []string { return []string{pkixPEM(t, &rsaKey.PublicKey)} },
			tok: func(t *testing.T) string { return sign(t, devissuer.SignOptions{}) }},
		{name: "PEM RSA PUBLIC KEY, token without kid",
			keys: func(t *testing.T) []string {
				return []string{pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey))}
			},
			tok: func(t *testing.T) string { return sign(t, devissuer.SignOptions{OmitKeyID: true}) }},
		{name: "JWKS document", keys: func(t *testing.T) []string { return []string{string(iss.JWKS())} },
			tok: func(t *testing.T) string { return sign(t, devissuer.SignOptions{}) }},
		{name: "JWKS document, unknown kid", want: identity.CodeUnknownKey,
			keys: func(t *testing.T) []string { return []string{string(iss.JWKS())} },
			tok:  func(t *testing.T) string { return sign(t, devissuer.SignOptions{KeyID: "rotated-away"}) }},
		{name: "PEM key of another issuer", want: identity.CodeSignatureInvalid,
			keys: func(t *testing.T) []string { return []string{pkixPEM(t, &loadKey(t, "rsa2.pem").PublicKey)} },
			tok:  func(t *testing.T) string { return sign(t, devissuer.SignOptions{}) }},
		{name: "EC P-256 PEM key with ES256", algs: []string{"ES256"},
			keys: func(t *testing.T) []string { return []string{pkixPEM(t, &ecKey.PublicKey)} },
			tok:  func(t *testing.T) string { return sign(t, devissuer.SignOptions{Alg: "ES256", Key: ecKey}) }},
		{name: "EC key cannot verify RS256", algs: []string{"ES256", "RS256"}, want: identity.CodeUnknownKey,
			keys: func(t *testing.T) []string { return []string{pkixPEM(t, &ecKey.PublicKey)} },
			tok:  func(t *testing.T) string { return sign(t, devissuer.SignOptions{}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := identity.Issuer{Name: "static", Kind: identity.KindGitLab, URL: url, PublicKeys: tt.keys(t),
				Algorithms: tt.algs, Audiences: []string{testAudience}}
			log := newFetchLog()
			v := newVerifier(t, testutil.NewClock(t0), log, is)
			_, err := v.Verify(context.Background(), tt.tok(t))
			if tt.want == "" && err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if tt.want != "" {
				wantCode(t, err, tt.want)
			}
			if n := len(log.ch); n != 0 {
				t.Errorf("got %d key fetches, want none for static keys", n)
			}
		})
	}
}
