package peers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	if p := os.Getenv("KEYFERRY_VERSITYGW"); p != "" {
		if !executable(p) {
			return "", missingPeer("KEYFERRY_VERSITYGW="+p+" is not an executable file", "unset it or point it at a versitygw "+VersityGWVersion+" binary")
		}
		return p, nil
	}
	p := filepath.Join(CacheDir(), "versitygw-"+VersityGWVersion)
	if !executable(p) {
		return "", missingPeer("versitygw "+VersityGWVersion+" not found at "+p,
			"build it with `scripts/peers.sh versitygw` from the repository root (~1-3 min), or set KEYFERRY_VERSITYGW")
	}
	return p, nil
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
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("versitygw logs, last lines:\n%s", v.LogTail(40))
		}
		if err := v.Close(); err != nil {
			t.Errorf("stop versitygw: %v", err)
		}
	})
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := v.S3Client(v.RootCredentials())
	for _, b := range cfg.Buckets {
		if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			v.Close()
			return nil, fmt.Errorf("peers: versitygw: create bucket %q: %w", b, err)
		}
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

	v.iam, err = startProc(bin, append([]string{"--port", iamAddr}, append(root,
		"iam", "--dir", filepath.Join(data, "iam"), "--private-ports", sock)...),
		v.Dir, filepath.Join(v.Dir, "iam.log"), nil)
	if err != nil {
		return err
	}
	if err := v.waitReady(v.iam, func(ctx context.Context) error {
		_, err := v.IAMClient(v.RootCredentials()).ListUsers(ctx, &iam.ListUsersInput{})
		return err
	}); err != nil {
		return fmt.Errorf("iam server: %w", err)
	}

	v.s3, err = startProc(bin, append([]string{"--port", s3Addr}, append(root,
		"--iam-standalone-endpoint", sock, "posix", filepath.Join(data, "objects"))...),
		v.Dir, filepath.Join(v.Dir, "s3.log"), nil)
	if err != nil {
		return err
	}
	if err := v.waitReady(v.s3, func(ctx context.Context) error {
		_, err := v.S3Client(v.RootCredentials()).ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	}); err != nil {
		return fmt.Errorf("s3 gateway: %w", err)
	}
	return nil
}

// waitReady polls probe until it succeeds, p exits or the deadline passes.
func (v *VersityGW) waitReady(p *proc, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), versityReadyTimeout)
	defer cancel()
	var last error
	for {
		select {
		case <-p.exited:
			if p.logContains("address already in use") {
				return errBindRace
			}
			return fmt.Errorf("exited during start-up: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: last error: %v", versityReadyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		last = probe(actx)
		acancel()
		if last == nil {
			return nil
		}
	}
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
	return "--- iam.log\n" + logTail(filepath.Join(v.Dir, "iam.log"), n) +
		"\n--- s3.log\n" + logTail(filepath.Join(v.Dir, "s3.log"), n)
}

// RootCredentials returns the root identity's static credentials.
func (v *VersityGW) RootCredentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(v.RootAccessKey, v.RootSecretKey, "")
}

func (v *VersityGW) config(creds aws.CredentialsProvider, endpoint string) aws.Config {
	return aws.Config{
		Region:           v.Region,
		Credentials:      creds,
		BaseEndpoint:     aws.String(endpoint),
		HTTPClient:       &http.Client{Timeout: 30 * time.Second},
		RetryMaxAttempts: 1,
	}
}

// IAMClient returns an IAM client for the IAM server.
func (v *VersityGW) IAMClient(creds aws.CredentialsProvider, opts ...func(*iam.Options)) *iam.Client {
	return iam.NewFromConfig(v.config(creds, v.IAMEndpoint), opts...)
}

// S3Client returns a path-style S3 client for the gateway.
func (v *VersityGW) S3Client(creds aws.CredentialsProvider, opts ...func(*s3.Options)) *s3.Client {
	opts = append([]func(*s3.Options){func(o *s3.Options) { o.UsePathStyle = true }}, opts...)
	return s3.NewFromConfig(v.config(creds, v.S3Endpoint), opts...)
}
