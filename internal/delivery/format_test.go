package delivery

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

func sample() *api.CredsResponse {
	return &api.CredsResponse{
		LeaseID: "01JTEST", Role: "deploy", Region: "eu-west-1",
		Credentials: api.Credentials{
			AccessKeyID: "ASIAEXAMPLE123456789", SecretAccessKey: "se/cr+et=", SessionToken: "tok'en",
			Expiration: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), AccountID: "123456789012",
		},
	}
}

func TestWriteEnv(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "env", sample()); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"export AWS_ACCESS_KEY_ID='ASIAEXAMPLE123456789'\n",
		"export AWS_SECRET_ACCESS_KEY='se/cr+et='\n",
		`export AWS_SESSION_TOKEN='tok'\''en'` + "\n",
		"export AWS_CREDENTIAL_EXPIRATION='2030-01-02T03:04:05Z'\n",
		"export AWS_REGION='eu-west-1'\n",
		"export AWS_DEFAULT_REGION='eu-west-1'\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestWriteDotenv(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "dotenv", sample()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "AWS_SECRET_ACCESS_KEY=se/cr+et=\n") || strings.Contains(b.String(), "export") {
		t.Fatalf("got %q, want bare KEY=value lines", b.String())
	}
	r := sample()
	r.Credentials.SessionToken = "a\nb"
	if err := Write(&b, "dotenv", r); err == nil {
		t.Fatal("got nil, want an error for a newline in a value")
	}
}

func TestWriteCredentialProcess(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, "credential-process", sample()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["Version"] != float64(1) || doc["AccessKeyId"] != "ASIAEXAMPLE123456789" || doc["Expiration"] != "2030-01-02T03:04:05Z" || doc["AccountId"] != "123456789012" {
		t.Fatalf("got %v", doc)
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	if err := Write(&bytes.Buffer{}, "yaml", sample()); err == nil || !strings.Contains(err.Error(), "credential-process") {
		t.Fatalf("got %v, want an error listing the formats", err)
	}
}
