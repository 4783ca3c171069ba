// Package peers starts and drives the real third-party peers and clients
// that keyferry's end-to-end tests run against: SeaweedFS 4.53 (IAM + STS +
// S3 in one process), a TLS OIDC identity provider, aws-cli v2, aws-cli v1,
// boto3 and a small AWS SDK for Go v2 program that uses the SDK's default
// credential chain.
//
// Peers are built or installed outside the checkout by scripts/peers.sh and
// cached per machine (scripts/peers.sh all). A missing peer fails the test
// with the command that provides it; KEYFERRY_E2E_ALLOW_SKIP=1 skips
// instead. KEYFERRY_WEED, KEYFERRY_PYTHON and KEYFERRY_PEERS_CACHE override
// where peers are looked for.
//
// Every server binds 127.0.0.1 only, keeps its data in a temp dir and is
// stopped by PID. Two lifecycles are offered:
//
//   - StartSeaweedFS(t, cfg) and StartTLSIdP(t) tie a peer to one test;
//   - SharedStack (or NewShared with LaunchSeaweedFS/NewTLSIdP) starts one
//     set of peers per test binary on first use, since SeaweedFS takes ~4 s
//     to start.
//
// For example:
//
//	var stack = peers.SharedStack(func(idp *peers.IdP) peers.SeaweedConfig {
//		return peers.SeaweedConfig{
//			Policies:  map[string]json.RawMessage{"Put": putPolicy},
//			Providers: []peers.SeaweedOIDCProvider{idp.SeaweedProvider("ci-idp", "keyferry")},
//			Roles: []peers.SeaweedRole{
//				{Name: "deploy", AttachedPolicies: []string{"Put"}, TrustAssumeRole: true},
//			},
//			Buckets: []string{"ci-bucket"},
//		}
//	})
//
//	func TestX(t *testing.T) {
//		s := stack.Get(t)
//		creds, err := s.SeaweedFS.AssumeRole(ctx, "deploy", "job-1")
//		…
//		res := peers.AWSCLIv2(t, peers.CredsEnv(creds, s.SeaweedFS.Region),
//			"s3", "cp", file, "s3://ci-bucket/k", "--endpoint-url", s.SeaweedFS.Endpoint)
//		if !res.OK() { t.Fatalf("aws s3 cp: %s", res) }
//	}
//
// A peer started by LaunchSeaweedFS is killed by the kernel if the test
// binary dies (Linux parent-death signal), so a panic or a -timeout never
// leaves a server behind; temp dirs of dead test binaries are removed by
// the next launch. Call Shared.Close from TestMain to remove them at once.
//
// The client runners (AWSCLIv2, AWSCLIv1, Boto3*, GoSDK*) run each client
// in a clean environment (see Run): a fresh HOME, no inherited AWS_*
// variables, IMDS off unless the caller turns it on. They never log secret
// values. ErrorCode, IsAccessDenied, IsInvalidAccessKey and
// IsSignatureMismatch read the AWS error code out of any client's stderr.
//
// The quirks of SeaweedFS 4.53 that tests must tolerate are pinned, with the
// exact error texts, by the smoke tests in test/e2e/peers_test.go.
package peers
