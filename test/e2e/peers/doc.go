// Package peers starts and drives the real third-party peers and clients
// that keyferry's end-to-end tests run against: SeaweedFS (IAM + STS + S3 in
// one process), a TLS OIDC identity provider, aws-cli v2, aws-cli v1,
// boto3 and a small AWS SDK for Go v2 program that uses the SDK's default
// credential chain.
//
// Peers are built or installed outside the checkout by scripts/peers.sh and
// cached per machine. A missing peer fails the test (t.Fatal) with the
// command that provides it; set KEYFERRY_E2E_ALLOW_SKIP=1 to skip instead.
//
// Every server binds 127.0.0.1 only, keeps its data in a temp dir and is
// stopped by PID. Two lifecycles are offered:
//
//   - StartSeaweedFS(t, cfg) and StartTLSIdP(t) tie a peer to one test;
//   - LaunchSeaweedFS(cfg) and NewTLSIdP() return a peer the caller closes,
//     for use with Shared, which starts one set of peers per test binary on
//     first use (SeaweedFS takes about 5 s to start).
//
// A peer started by LaunchSeaweedFS is killed by the kernel if the test
// binary dies (Linux parent-death signal), so a panic or a -timeout never
// leaves a server behind.
//
// The client runners (AWSCLIv2, AWSCLIv1, Boto3, GoSDK) run each client in
// a clean environment: a fresh HOME, no inherited AWS_* variables, IMDS off
// unless the caller turns it on. They never log secret values.
package peers
