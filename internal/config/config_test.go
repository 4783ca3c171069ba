package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyferry/keyferry/internal/testutil"
)

func TestParseRejectsUnknownKeys(t *testing.T) {
	var c Config
	err := Parse([]byte("listen: 127.0.0.1:1\nlistn: x\n"), &c)
	if err == nil || !strings.Contains(err.Error(), `unknown field "listn"`) {
		t.Fatalf("got %v, want an unknown field error naming listn", err)
	}
	err = Parse([]byte("aws:\n  regoin: eu-west-1\n"), &c)
	if err == nil || !strings.Contains(err.Error(), "regoin") {
		t.Fatalf("got %v, want an unknown field error naming regoin", err)
	}
}

func TestLoadFileEnvPrecedence(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keyferry.yaml")
	if err := os.WriteFile(p, []byte("listen: 127.0.0.1:9000\naws:\n  region: eu-west-1\n  call_timeout: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEYFERRY_LISTEN": "127.0.0.1:9100"}
	c, err := Load(p, testutil.Env(env))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if c.Listen != "127.0.0.1:9100" {
		t.Errorf("listen: got %q, want the env value 127.0.0.1:9100", c.Listen)
	}
	if c.AWS.Region != "eu-west-1" || c.AWS.CallTimeout.D().Seconds() != 3 {
		t.Errorf("aws: got %+v, want region eu-west-1 and 3s timeout from the file", c.AWS)
	}
	if c.PublicURL != "http://127.0.0.1:9100" {
		t.Errorf("public_url: got %q", c.PublicURL)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestLoadBadEnv(t *testing.T) {
	_, err := Load("", func(k string) string {
		if k == "KEYFERRY_INSECURE_HTTP" {
			return "perhaps"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "KEYFERRY_INSECURE_HTTP") {
		t.Fatalf("got %v, want an error naming KEYFERRY_INSECURE_HTTP", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := &Config{
		Listen:  "0.0.0.0:8200",
		TLS:     TLS{CertFile: "/nonexistent.pem"},
		Storage: "s3://bucket",
		AWS:     AWS{Region: "Europe", STSEndpoint: "http://sts.example.com", MaxAttempts: 99},
		Log:     Log{Level: "loud", Format: "xml"},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("got nil, want errors")
	}
	for _, want := range []string{"tls: set both", "storage:", "audit.path: required", "aws.region:", "aws.sts_endpoint: plain HTTP", "aws.max_attempts:", "log.level:", "log.format:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestValidatePlainHTTP(t *testing.T) {
	tests := []struct {
		name     string
		listen   string
		insecure bool
		wantErr  bool
	}{
		{name: "loopback v4", listen: "127.0.0.1:8200"},
		{name: "loopback v6", listen: "[::1]:8200"},
		{name: "localhost", listen: "localhost:8200"},
		{name: "all interfaces", listen: "0.0.0.0:8200", wantErr: true},
		{name: "empty host", listen: ":8200", wantErr: true},
		{name: "explicit insecure", listen: "0.0.0.0:8200", insecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Listen: tt.listen, InsecureHTTP: tt.insecure}
			c.SetDefaults()
			err := c.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("got %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
