package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersityGWVersion is the versitygw release the tests pin. Built with `go
// install`, the binary reports its version as "git".
const VersityGWVersion = "1.8.0"

const (
	versityDirPrefix    = "keyferry-versitygw-"
	versityReadyTimeout = 30 * time.Second // up in < 1 s
	versityStopGrace    = 2 * time.Second
)

// VersityGWBinary locates versitygw: $KEYFERRY_VERSITYGW, else
// CacheDir()/versitygw-1.8.0 as built by `scripts/peers.sh versitygw`.
func VersityGWBinary() (string, error) {
	return peerBinary("KEYFERRY_VERSITYGW", "versitygw", VersityGWVersion, "versitygw-"+VersityGWVersion,
		"build it with `scripts/peers.sh versitygw` from the repository root (~1-3 min)")
}

// VersityGWConfig describes what a versitygw instance starts with.
type VersityGWConfig struct {
	Buckets []string // created by the root identity once S3 answers
}

// VersityGW is a running versitygw: a standalone IAM API server and an S3
// gateway (posix backend) that reads its identities over a Unix socket.
// It is the second, independent IAM + S3 peer, for keyferry's IAM-user path:
// it has no CreatePolicy/AttachUserPolicy and no usable STS.
type VersityGW struct {
	IAMEndpoint   string // http://127.0.0.1:PORT
	S3Endpoint    string // http://127.0.0.1:PORT
	Region        string // us-east-1
	RootAccessKey string
	RootSecretKey string
	Dir           string // IAM store, objects, logs; removed by Close

	iam, s3   *proc
	closeOnce sync.Once
	closeErr  error
}

// StartVersityGW starts versitygw for one test and stops it in t.Cleanup.
// A missing binary fails the test (see AllowSkipEnv).
func StartVersityGW(t testing.TB, cfg VersityGWConfig) *VersityGW {
	t.Helper()
	v, err := LaunchVersityGW(cfg)
	if err != nil {
		failOrSkip(t, err)
	}
	stopOnCleanup(t, "versitygw", func() string { return "versitygw logs, last lines:\n" + v.LogTail(40) }, v.Close)
	return v
}

// LaunchVersityGW starts versitygw; the caller must Close it.
func LaunchVersityGW(cfg VersityGWConfig) (*VersityGW, error) {
	bin, err := VersityGWBinary()
	if err != nil {
		return nil, err
	}
	// An owned dir directly under TMPDIR keeps the IAM socket path short.
	dir, err := makeOwnedTempDir(versityDirPrefix)
	if err != nil {
		return nil, err
	}
	v := &VersityGW{
		Region:        "us-east-1",
		RootAccessKey: "kfroot" + randomHex(6),
		RootSecretKey: randomHex(20),
		Dir:           dir,
	}
	for try := 1; ; try++ {
		err = v.start(bin, try)
		if err == nil {
			break
		}
		v.stopProcs()
		if !errors.Is(err, errBindRace) || try >= seaweedStartTries {
			err = fmt.Errorf("peers: start versitygw: %w\n%s", err, v.LogTail(20))
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := createBuckets(v.S3Client(v.RootCredentials()), "versitygw", cfg.Buckets); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

func (v *VersityGW) start(bin string, try int) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	iamAddr := Loopback + ":" + strconv.Itoa(ports[0])
	s3Addr := Loopback + ":" + strconv.Itoa(ports[1])
	v.IAMEndpoint, v.S3Endpoint = "http://"+iamAddr, "http://"+s3Addr
	data := filepath.Join(v.Dir, "data-"+strconv.Itoa(try))
	sock := filepath.Join(v.Dir, fmt.Sprintf("iam-%d.sock", try))
	for _, d := range []string{filepath.Join(data, "iam"), filepath.Join(data, "objects")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	root := []string{"--access", v.RootAccessKey, "--secret", v.RootSecretKey, "--region", v.Region}

	v.iam, err = v.startServer(bin, "iam server", "iam.log", append([]string{"--port", iamAddr}, append(root,
		"iam", "--dir", filepath.Join(data, "iam"), "--private-ports", sock)...),
		func(ctx context.Context) error {
			_, err := v.IAMClient(v.RootCredentials()).ListUsers(ctx, &iam.ListUsersInput{})
			return err
		})
	if err != nil {
		return err
	}
	v.s3, err = v.startServer(bin, "s3 gateway", "s3.log", append([]string{"--port", s3Addr}, append(root,
		"--iam-standalone-endpoint", sock, "posix", filepath.Join(data, "objects"))...),
		func(ctx context.Context) error {
			_, err := v.S3Client(v.RootCredentials()).ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		})
	return err
}

// startServer starts one versitygw process with args, logging to logName
// in Dir, and waits until probe succeeds, p exits or the deadline passes.
// The process is returned even when it failed to become ready, for
// stopProcs.
func (v *VersityGW) startServer(bin, what, logName string, args []string, probe func(context.Context) error) (*proc, error) {
	p, err := startProc(bin, args, v.Dir, filepath.Join(v.Dir, logName), nil)
	if err != nil {
		return nil, err
	}
	lostRace := func() bool { return p.logContains("address already in use") }
	if err := pollReady(p, "", versityReadyTimeout, 100*time.Millisecond, probe, lostRace); err != nil {
		return p, fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}

func (v *VersityGW) stopProcs() {
	// The gateway first: it depends on the IAM server.
	for _, p := range []*proc{v.s3, v.iam} {
		if p != nil {
			p.stop(versityStopGrace)
		}
	}
	v.s3, v.iam = nil, nil
}

// Close stops both processes and removes Dir. It is idempotent.
func (v *VersityGW) Close() error {
	v.closeOnce.Do(func() {
		v.stopProcs()
		v.closeErr = os.RemoveAll(v.Dir)
	})
	return v.closeErr
}

// LogTail returns the last n lines of each process's log.
func (v *VersityGW) LogTail(n int) string {
	return "--- iam.log\n" + LogTail(filepath.Join(v.Dir, "iam.log"), n) +
		"\n--- s3.log\n" + LogTail(filepath.Join(v.Dir, "s3.log"), n)
}

// RootCredentials returns the root identity's static credentials.
func (v *VersityGW) RootCredentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(v.RootAccessKey, v.RootSecretKey, "")
}

// IAMClient returns an IAM client for the IAM server.
func (v *VersityGW) IAMClient(creds aws.CredentialsProvider, opts ...func(*iam.Options)) *iam.Client {
	return iam.NewFromConfig(clientConfig(v.Region, v.IAMEndpoint, creds), opts...)
}

// S3Client returns a path-style S3 client for the gateway.
func (v *VersityGW) S3Client(creds aws.CredentialsProvider, opts ...func(*s3.Options)) *s3.Client {
	return pathStyleS3(clientConfig(v.Region, v.S3Endpoint, creds), opts...)
}
