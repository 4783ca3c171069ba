//go:build linux || darwin

package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
)

// Real clients against the local endpoints over loopback HTTP: the AWS SDK
// for Go v2 and botocore, each reading the exact credentials the Source
// holds. End-to-end runs of aws-cli v2 and the built binary are in
// test/e2e; the cheap ones are here.

// runClient runs a client process and decodes the sdkResult it prints.
func runClient(t *testing.T, env []string, args ...string) sdkResult {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr: %s", filepath.Base(args[0]), err, stderr.String())
	}
	var r sdkResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	return r
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGoSDKEndpointCredsReadsContainerEndpoint(t *testing.T) {
	now := time.Now()
	s := startLocal(t, LocalConfig{Endpoints: EndpointContainer, Source: staticSource(fixCreds(now))})
	p := endpointcreds.New(s.ContainerURL(), func(o *endpointcreds.Options) { o.AuthorizationToken = s.ContainerToken() })
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != fixKeyID || c.SecretAccessKey != fixSecret || c.SessionToken != fixSession || c.AccountID != fixAccount {
		t.Errorf("got %s/%s/%s/%s, want the fixture", c.AccessKeyID, c.SecretAccessKey, c.SessionToken, c.AccountID)
	}
	if want := fixCreds(now).Credentials.Expiration.Truncate(time.Second); !c.CanExpire || !c.Expires.Equal(want) {
		t.Errorf("got Expires %v (CanExpire %v), want %v", c.Expires, c.CanExpire, want)
	}

	// The Go SDK parses our error body: the code reaches the user.
	bad := endpointcreds.New(s.ContainerURL(), func(o *endpointcreds.Options) { o.AuthorizationToken = NewToken() })
	_, err = bad.Retrieve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid_authorization") {
		t.Errorf("wrong token: got %v, want an error naming invalid_authorization", err)
	}
}

func TestGoSDKDefaultChainReadsIMDSEndpoint(t *testing.T) {
	s := startLocal(t, LocalConfig{Endpoints: EndpointIMDS, RoleName: "ci-role"})
	env := append(cleanEnv(t),
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+s.IMDSEndpoint(),
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_REGION="+fixRegion)
	runClient(t, env, helperArgs("gosdk")...).check(t, "EC2RoleProvider", fixRegion)
}

func TestGoSDKDefaultChainReadsContainerEndpoint(t *testing.T) {
	s := startLocal(t, LocalConfig{Endpoints: EndpointContainer})
	dir := t.TempDir()
	env := append(cleanEnv(t),
		"AWS_CONTAINER_CREDENTIALS_FULL_URI="+s.ContainerURL(),
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="+writeFile(t, dir, "tok", s.ContainerToken()),
		"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull, "AWS_REGION="+fixRegion)
	runClient(t, env, helperArgs("gosdk")...).check(t, "CredentialsEndpointProvider", fixRegion)
}

// botocoreScript prints what botocore's provider loaded, as an sdkResult.
const botocoreScript = `
import json, sys
import botocore.credentials as bc
import botocore.utils as bu
kind, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "container-env":
    p = bc.ContainerProvider(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": token})
elif kind == "container-file":
    p = bc.ContainerProvider(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": url, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token})
else:
    p = bc.InstanceMetadataProvider(iam_role_fetcher=bu.InstanceMetadataFetcher(timeout=2, num_attempts=1, base_url=url))
c = p.load()
if c is None:
    sys.exit("no credentials")
f = c.get_frozen_credentials()
exp = getattr(c, "_expiry_time", None)
print(json.dumps({"AccessKeyId": f.access_key, "SecretAccessKey": f.secret_key, "Token": f.token,
                  "AccountId": f.account_id or "", "Source": c.method,
                  "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ") if exp else ""}))
`

func TestBotocoreReadsContainerEndpointWhenPythonAndBotocoreArePresent(t *testing.T) {
	py := pythonWithBotocore(t)
	now := time.Now()
	s := startLocal(t, LocalConfig{Endpoints: EndpointContainer, Source: staticSource(fixCreds(now))})
	want := formatExpiration(fixCreds(now).Credentials.Expiration)
	tokFile := writeFile(t, t.TempDir(), "tok", s.ContainerToken())
	for _, tc := range []struct{ name, kind, token string }{
		{"token in env", "container-env", s.ContainerToken()},
		{"token file", "container-file", tokFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runClient(t, cleanEnv(t), py, "-c", botocoreScript, tc.kind, s.ContainerURL(), tc.token)
			r.check(t, "container-role", "")
			if r.AccountID != fixAccount || r.Expiration != want {
				t.Errorf("got account %q expiration %q, want %q %q", r.AccountID, r.Expiration, fixAccount, want)
			}
		})
	}
}

func TestBotocoreReadsIMDSEndpointWhenPythonAndBotocoreArePresent(t *testing.T) {
	py := pythonWithBotocore(t)
	now := time.Now()
	s := startLocal(t, LocalConfig{Endpoints: EndpointIMDS, RoleName: "ci-role", Source: staticSource(fixCreds(now))})
	r := runClient(t, cleanEnv(t), py, "-c", botocoreScript, "imds", s.IMDSEndpoint(), "")
	r.check(t, "iam-role", "")
	if want := formatExpiration(fixCreds(now).Credentials.Expiration); r.Expiration != want {
		t.Errorf("got expiration %q, want %q", r.Expiration, want)
	}
}
