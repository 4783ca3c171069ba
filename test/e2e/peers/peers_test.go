package peers

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		name, output string
		want         []string
	}{
		{"aws-cli", "upload failed: ./f to s3://b/k An error occurred (AccessDenied) when calling the PutObject operation: Access Denied.", []string{"AccessDenied"}},
		{"boto3", "ClientError: An error occurred (SignatureDoesNotMatch) when calling the PutObject operation: The request signature…", []string{"SignatureDoesNotMatch"}},
		{"go sdk", "put-object: operation error S3: PutObject, https response error StatusCode: 403, RequestID: 1, HostID: , api error InvalidAccessKeyId: The access key ID…", []string{"InvalidAccessKeyId"}},
		{"gosdkclient json", `{"errors":[{"step":"put-object","code":"AccessDenied","message":"x"}]}`, []string{"AccessDenied"}},
		{"xml", "<Error><Code>ExpiredToken</Code></Error>", []string{"ExpiredToken"}},
		{"none", "Traceback: something else", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorCodes(tc.output); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if !IsAccessDenied("An error occurred (AccessDenied) when") || IsAccessDenied("An error occurred (AccessDeniedForReal) when") {
		t.Error("IsAccessDenied must match the code exactly")
	}
	if !IsInvalidAccessKey("api error InvalidClientTokenId: x") {
		t.Error("IsInvalidAccessKey must accept STS's InvalidClientTokenId")
	}
}

func TestRedactEnv(t *testing.T) {
	env := []string{
		"AWS_ACCESS_KEY_ID=ASIAEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=s3cr3t-value",
		"AWS_SESSION_TOKEN=tok-value-123",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=bearer-123",
		"AWS_WEB_IDENTITY_TOKEN_FILE=/run/token",
		"KEYFERRY_ADMIN_PASSWORD=hunter22",
	}
	got := strings.Join(RedactEnv(env), " ")
	for _, secret := range []string{"s3cr3t-value", "tok-value-123", "bearer-123", "hunter22"} {
		if strings.Contains(got, secret) {
			t.Errorf("RedactEnv leaked %q: %s", secret, got)
		}
	}
	for _, kept := range []string{"ASIAEXAMPLE", "/run/token"} {
		if !strings.Contains(got, kept) {
			t.Errorf("RedactEnv dropped %q: %s", kept, got)
		}
	}
	if got := Redact("stderr with tok-value-123 inside", secretValues(env)); strings.Contains(got, "tok-value-123") {
		t.Errorf("Redact leaked the session token: %s", got)
	}
}

func TestClientEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "inherited")
	t.Setenv("AWS_PROFILE", "inherited")
	t.Setenv("BOTO_CONFIG", "/inherited")
	t.Setenv("HOME", "/inherited-home")
	env := clientEnv([]string{"AWS_REGION=eu-west-1", "AWS_EC2_METADATA_DISABLED=false"}, func() string { return "/fresh-home" })

	get := func(k string) (string, bool) {
		v, ok := "", false
		for _, kv := range env { // the last value wins, as in exec.Cmd
			if key, val, _ := strings.Cut(kv, "="); key == k {
				v, ok = val, true
			}
		}
		return v, ok
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "BOTO_CONFIG"} {
		if v, ok := get(k); ok {
			t.Errorf("%s leaked into the client env: %q", k, v)
		}
	}
	for k, want := range map[string]string{
		"HOME":                      "/fresh-home",
		"AWS_REGION":                "eu-west-1",
		"AWS_EC2_METADATA_DISABLED": "false", // the caller's value wins
		"AWS_PAGER":                 "",
	} {
		if got, _ := get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
}

func TestSeaweedConfigRender(t *testing.T) {
	cfg := SeaweedConfig{
		Policies:  map[string]json.RawMessage{"Put": json.RawMessage(`{"Version":"2012-10-17","Statement":[]}`)},
		Providers: []SeaweedOIDCProvider{{Name: "idp", Issuer: "https://127.0.0.1:1", ClientID: "aud", JWKSURI: "https://127.0.0.1:1/jwks.json", CACertFile: "/ca.pem"}},
		Roles: []SeaweedRole{
			{Name: "ci", AttachedPolicies: []string{"Put"}, TrustAssumeRole: true},
			{Name: "gh", AttachedPolicies: []string{"Put"}, TrustWebIdentity: true, Audience: "aud"},
		},
	}
	b, err := cfg.render("AK", "SK")
	if err != nil {
		t.Fatal(err)
	}
	var f swFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Roles[1].RoleArn, "arn:aws:iam::000000000000:role/gh"; got != want {
		t.Errorf("role ARN: got %q, want %q", got, want)
	}
	var trust struct {
		Statement []struct {
			Principal any
			Action    []string
			Condition map[string]map[string]string
		}
	}
	if err := json.Unmarshal(f.Roles[1].TrustPolicy, &trust); err != nil {
		t.Fatal(err)
	}
	st := trust.Statement[0]
	if got := st.Principal.(map[string]any)["Federated"]; got != "idp" {
		t.Errorf("trust principal: got %v, want Federated idp", got)
	}
	if got := st.Condition["StringEquals"]["oidc:aud"]; got != "aud" {
		t.Errorf("audience condition: got %q, want %q", got, "aud")
	}
	if got := f.Providers[0].Config["tlsCaCert"]; got != "/ca.pem" {
		t.Errorf("tlsCaCert: got %q", got)
	}
	if len(f.STS.SigningKey) != 44 {
		t.Errorf("signing key: got %d base64 chars, want 44 (32 bytes)", len(f.STS.SigningKey))
	}
}

func TestSeaweedConfigValidate(t *testing.T) {
	err := SeaweedConfig{
		Roles: []SeaweedRole{
			{Name: "nobody"},
			{Name: "web", TrustWebIdentity: true},
			{Name: "pol", TrustAssumeRole: true, AttachedPolicies: []string{"Missing"}},
		},
		Identities: []SeaweedIdentity{{Name: "admin", AccessKey: "a", SecretKey: "b"}},
	}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	for _, want := range []string{`"nobody": trusts nobody`, `"web": set Provider`, `"Missing" is not in Policies`, `"admin" is reserved`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
}

func TestFreePortsBelowEphemeralRange(t *testing.T) {
	ports, err := freePorts(10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < portLow || p > portHigh || seen[p] {
			t.Errorf("port %d: out of range or repeated (%v)", p, ports)
		}
		seen[p] = true
	}
}

func TestMissingPeerSkipsOnlyWhenAllowed(t *testing.T) {
	err := missingPeer("weed not found", "run scripts/peers.sh seaweedfs")
	if !errors.Is(err, ErrPeerMissing) {
		t.Fatalf("missingPeer does not wrap ErrPeerMissing: %v", err)
	}
	t.Setenv("KEYFERRY_WEED", "/nonexistent/weed")
	if _, err := SeaweedBinary(); !errors.Is(err, ErrPeerMissing) {
		t.Errorf("SeaweedBinary with a bad KEYFERRY_WEED: got %v, want ErrPeerMissing", err)
	}
}
