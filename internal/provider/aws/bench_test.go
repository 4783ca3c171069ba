package aws

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyferry/keyferry/internal/testutil"
)

// BenchmarkAssumeRole measures one AssumeRole through the SDK against the
// in-process fake STS on loopback, from many goroutines. The fake and the
// client share the machine's CPUs, so ns/op is client + server cost; the
// raw-http case is the same exchange without the SDK (hand-built form, no
// signing, no XML parsing), so the difference is the SDK's per-call cost.
//
//	go test -run '^$' -bench 'AssumeRole' -benchmem ./internal/provider/aws/
func BenchmarkAssumeRole(b *testing.B) {
	req := Request{
		RoleARN: testRoleARN, SessionName: "gl-group-project-123456",
		Tags:              []Tag{{"project", "group/project"}, {"pipeline", "987654"}, {"ref", "main"}},
		TransitiveTagKeys: []string{"project"},
		Duration:          time.Hour,
	}
	cases := []struct {
		name       string
		fakeOpts   []testutil.STSOption
		goroutines int // per GOMAXPROCS
	}{
		{name: "sdk", goroutines: 4},
		{name: "sdk/fake-verifies-sigv4", fakeOpts: []testutil.STSOption{testutil.WithSTSKey(testAccessKey, testSecretKey)}, goroutines: 4},
		{name: "sdk/64-goroutines", goroutines: 32},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			fake := testutil.NewFakeSTS(b, append([]testutil.STSOption{testutil.WithoutSTSRecording()}, c.fakeOpts...)...)
			cfg := Config{
				Region: "us-east-1", Endpoint: fake.URL(),
				Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
			}
			p, err := New(b.Context(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(c.goroutines)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.AssumeRole(b.Context(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if got := fake.CallsFor(testutil.ActionAssumeRole); got < b.N {
				b.Fatalf("got %d STS calls, want ≥%d", got, b.N)
			}
		})
	}

	b.Run("raw-http", func(b *testing.B) {
		fake := testutil.NewFakeSTS(b, testutil.WithoutSTSRecording())
		form := url.Values{
			"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {req.RoleARN},
			"RoleSessionName": {req.SessionName}, "DurationSeconds": {"3600"},
			"Tags.member.1.Key": {"project"}, "Tags.member.1.Value": {"group/project"},
			"Tags.member.2.Key": {"pipeline"}, "Tags.member.2.Value": {"987654"},
			"Tags.member.3.Key": {"ref"}, "Tags.member.3.Value": {"main"},
			"TransitiveTagKeys.member.1": {"project"},
		}.Encode()
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
		client := &http.Client{Transport: tr}
		b.ReportAllocs()
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, fake.URL()+"/", strings.NewReader(form))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAccessKey+"/20300102/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00")
				resp, err := client.Do(r)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("got status %d, want 200", resp.StatusCode)
					return
				}
			}
		})
	})
}

// BenchmarkAssumeRoleWithWebIdentity is the unsigned path with a ~900-byte
// job token.
func BenchmarkAssumeRoleWithWebIdentity(b *testing.B) {
	fake := testutil.NewFakeSTS(b, testutil.WithoutSTSRecording())
	p, err := New(b.Context(), Config{
		Region: "us-east-1", Endpoint: fake.URL(),
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
	})
	if err != nil {
		b.Fatal(err)
	}
	claims := map[string]any{
		"iss": "https://gitlab.example.com", "aud": "sts.amazonaws.com",
		"sub": "project_path:group/project:ref_type:branch:ref:main", "exp": time.Now().Add(time.Hour).Unix(),
		"namespace_path": "group", "project_path": "group/project", "pipeline_id": "987654", "job_id": "123456",
		"user_login": "alice", "user_email": "alice@example.com", "ref": "main", "ref_protected": "true",
		"runner_environment": "self-hosted", "sha": strings.Repeat("a", 40), "ci_config_ref_uri": "gitlab.example.com/group/project//.gitlab-ci.yml@refs/heads/main",
	}
	req := Request{RoleARN: testRoleARN, SessionName: "gl-123456", WebIdentityToken: testutil.UnsignedJWT(claims) + strings.Repeat("s", 342), Duration: time.Hour}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.AssumeRoleWithWebIdentity(b.Context(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
