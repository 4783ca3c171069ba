package peers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// SeaweedVersion is the SeaweedFS release the tests pin.
const SeaweedVersion = "4.53"

// seaweedDirPrefix names the temp dirs of LaunchSeaweedFS.
const seaweedDirPrefix = "keyferry-seaweedfs-"

// SeaweedFS timings.
const (
	seaweedReadyTimeout = 60 * time.Second // starts in ~5 s on 2 CPUs
	seaweedStopGrace    = time.Second      // its filer can take 15 s to stop; the data is disposable
	seaweedStartTries   = 3                // fresh ports after a lost bind race
)

// SeaweedBinary locates the SeaweedFS binary: $KEYFERRY_WEED, else
// CacheDir()/weed-4.53 as built by `scripts/peers.sh seaweedfs`.
func SeaweedBinary() (string, error) {
	return peerBinary("KEYFERRY_WEED", "SeaweedFS", SeaweedVersion, "weed-"+SeaweedVersion,
		"build it with `scripts/peers.sh seaweedfs` from the repository root (first time only, ~4-6 min)")
}

// SeaweedFS is a running `weed mini`: S3, IAM and STS on one endpoint.
type SeaweedFS struct {
	Endpoint       string // http://127.0.0.1:PORT, serving S3, IAM and STS
	Region         string // us-east-1
	AdminAccessKey string
	AdminSecretKey string
	Dir            string // data, config and log
	LogPath        string

	ports     seaweedPorts
	extraArgs []string
	ownsDir   bool
	proc      *proc // the current start attempt

	closeOnce sync.Once
	closeErr  error
}

// seaweedPorts are the ten listeners of `weed mini`. Every one is set
// explicitly: the defaults (and the admin ports 12535/22535/23646/33646 it
// opens even with -admin.ui=false) would collide between instances.
type seaweedPorts struct {
	master, masterGRPC, volume, volumeGRPC, filer, filerGRPC, s3, s3GRPC, admin, adminGRPC int
}

// StartSeaweedFS starts SeaweedFS for one test, with its data in
// t.TempDir(), and stops it in t.Cleanup. A missing binary fails the test
// (see AllowSkipEnv). On failure the end of its log is written to t.
func StartSeaweedFS(t testing.TB, cfg SeaweedConfig) *SeaweedFS {
	t.Helper()
	sweepStale(seaweedDirPrefix)
	sw, err := launchSeaweedFS(cfg, t.TempDir(), freePorts)
	if err != nil {
		failOrSkip(t, err)
	}
	stopOnCleanup(t, "SeaweedFS", sw.failureLog, sw.Close)
	return sw
}

// LaunchSeaweedFS starts SeaweedFS in a new temp dir that Close removes.
// The caller must call Close; if the calling process dies first, the kernel
// kills SeaweedFS (parent-death signal).
func LaunchSeaweedFS(cfg SeaweedConfig) (*SeaweedFS, error) {
	dir, err := makeOwnedTempDir(seaweedDirPrefix)
	if err != nil {
		return nil, err
	}
	sw, err := launchSeaweedFS(cfg, dir, freePorts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sw.ownsDir = true
	return sw, nil
}

// launchSeaweedFS starts SeaweedFS with its files in dir and ports from
// pickPorts (a parameter so that a test can lose the bind race on purpose).
func launchSeaweedFS(cfg SeaweedConfig, dir string, pickPorts func(n int) ([]int, error)) (*SeaweedFS, error) {
	bin, err := SeaweedBinary()
	if err != nil {
		return nil, err
	}
	sw := &SeaweedFS{
		Region:         "us-east-1",
		AdminAccessKey: "kfadmin" + randomHex(6),
		AdminSecretKey: randomHex(20),
		Dir:            dir,
		LogPath:        filepath.Join(dir, "weed.log"),
		extraArgs:      cfg.ExtraArgs,
	}
	conf, err := cfg.render(sw.AdminAccessKey, sw.AdminSecretKey)
	if err != nil {
		return nil, fmt.Errorf("peers: seaweedfs config: %w", err)
	}
	confPath := filepath.Join(dir, "iam.json")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return nil, err
	}

	for try := 1; ; try++ {
		err = sw.start(bin, confPath, try, pickPorts)
		if err == nil {
			break
		}
		retry := errors.Is(err, errBindRace) && try < seaweedStartTries
		sw.Close()
		if !retry {
			return nil, fmt.Errorf("peers: start seaweedfs (log %s): %w\n%s", sw.LogPath, err, sw.LogTail(40))
		}
		sw.closeOnce = sync.Once{}
	}

	if err := createBuckets(sw.S3Client(sw.AdminCredentials()), "seaweedfs", cfg.Buckets); err != nil {
		sw.Close()
		return nil, err
	}
	return sw, nil
}

// errBindRace means a port we picked was taken before SeaweedFS bound it.
var errBindRace = errors.New("a port was taken before seaweedfs bound it")

// start runs one attempt: fresh ports, start, wait until S3 answers an
// authenticated request.
func (sw *SeaweedFS) start(bin, confPath string, try int, pickPorts func(n int) ([]int, error)) error {
	sw.proc = nil
	ps, err := pickPorts(10)
	if err != nil {
		return err
	}
	sw.ports = seaweedPorts{ps[0], ps[1], ps[2], ps[3], ps[4], ps[5], ps[6], ps[7], ps[8], ps[9]}
	sw.Endpoint = "http://" + Loopback + ":" + strconv.Itoa(sw.ports.s3)

	dataDir := filepath.Join(sw.Dir, "data-"+strconv.Itoa(try))
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	p := sw.ports
	// Recorded so that sweepStale can remove the sockets of a SeaweedFS that
	// died with its test binary.
	socks := strings.Join(p.sockets(), "\n")
	if err := os.WriteFile(filepath.Join(sw.Dir, socketsFile), []byte(socks), 0o600); err != nil {
		return err
	}
	args := []string{
		"mini",
		"-dir=" + dataDir,
		"-ip=" + Loopback, "-ip.bind=" + Loopback,
		"-master.port=" + strconv.Itoa(p.master), "-master.port.grpc=" + strconv.Itoa(p.masterGRPC),
		"-volume.port=" + strconv.Itoa(p.volume), "-volume.port.grpc=" + strconv.Itoa(p.volumeGRPC),
		"-filer.port=" + strconv.Itoa(p.filer), "-filer.port.grpc=" + strconv.Itoa(p.filerGRPC),
		"-s3.port=" + strconv.Itoa(p.s3), "-s3.port.grpc=" + strconv.Itoa(p.s3GRPC),
		// The admin server runs even with -admin.ui=false; its legacy port
		// (default 23646, plus 33646 for gRPC) is disabled with 0.
		"-admin.port=" + strconv.Itoa(p.admin), "-admin.port.grpc=" + strconv.Itoa(p.adminGRPC), "-admin.port.legacy=0",
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		"-webdav=false", "-admin.ui=false", "-master.telemetry=false",
		"-s3.config=" + confPath, "-s3.iam.config=" + confPath, "-s3.iam.readOnly=false",
	}
	args = append(args, sw.extraArgs...)

	// TMPDIR keeps SeaweedFS's own temp files in the instance's dir.
	pr, err := startProc(bin, args, sw.Dir, sw.LogPath, []string{"TMPDIR=" + sw.Dir})
	if err != nil {
		return err
	}
	sw.proc = pr
	return sw.waitReady()
}

// waitReady polls S3 with the admin credentials until it answers, the
// process exits or the deadline passes.
func (sw *SeaweedFS) waitReady() error {
	client := sw.S3Client(sw.AdminCredentials(), func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	return pollReady(sw.proc, "seaweedfs ", seaweedReadyTimeout, 200*time.Millisecond, func(ctx context.Context) error {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	}, sw.lostBindRace)
}

// lostBindRace reports whether the log says a port we picked was taken.
// SeaweedFS exits when an HTTP port is taken ("Port allocation failed: port
// N for S3 (specified by flag s3.port) is not available on 127.0.0.1 and
// cannot be used"); for a taken gRPC port it picks another one itself ("gRPC
// port N for Filer is not available, finding alternative...").
func (sw *SeaweedFS) lostBindRace() bool {
	return sw.proc.logContains("Port allocation failed", "address already in use")
}

// Close stops SeaweedFS: SIGTERM, then SIGKILL after a short grace. It also
// removes the gRPC sockets SeaweedFS leaves in /tmp and, for LaunchSeaweedFS,
// the temp dir. Close is idempotent.
func (sw *SeaweedFS) Close() error {
	sw.closeOnce.Do(func() {
		if sw.proc != nil {
			sw.proc.stop(seaweedStopGrace)
		}
		for _, sock := range sw.ports.sockets() {
			os.Remove(sock)
		}
		if sw.ownsDir {
			sw.closeErr = os.RemoveAll(sw.Dir)
		}
	})
	return sw.closeErr
}

// Running reports whether the SeaweedFS process is still alive.
func (sw *SeaweedFS) Running() bool { return sw.proc != nil && sw.proc.Running() }

// LogTail returns the last n lines of the SeaweedFS log.
func (sw *SeaweedFS) LogTail(n int) string { return LogTail(sw.LogPath, n) }

// RoleARN is the ARN of one of this instance's roles (see RoleARN).
func (sw *SeaweedFS) RoleARN(name string) string { return RoleARN(name) }

// AdminCredentials returns the admin identity's static credentials.
func (sw *SeaweedFS) AdminCredentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(sw.AdminAccessKey, sw.AdminSecretKey, "")
}

// Config returns an aws.Config for this instance signing with creds: the
// endpoint, region and a retryer that does not retry, so that errors reach
// the test at once.
func (sw *SeaweedFS) Config(creds aws.CredentialsProvider) aws.Config {
	return clientConfig(sw.Region, sw.Endpoint, creds)
}

// S3Client returns a path-style S3 client for this instance.
func (sw *SeaweedFS) S3Client(creds aws.CredentialsProvider, opts ...func(*s3.Options)) *s3.Client {
	return pathStyleS3(sw.Config(creds), opts...)
}

// STSClient returns an STS client for this instance.
func (sw *SeaweedFS) STSClient(creds aws.CredentialsProvider, opts ...func(*sts.Options)) *sts.Client {
	return sts.NewFromConfig(sw.Config(creds), opts...)
}

// IAMClient returns an IAM client for this instance.
func (sw *SeaweedFS) IAMClient(creds aws.CredentialsProvider, opts ...func(*iam.Options)) *iam.Client {
	return iam.NewFromConfig(sw.Config(creds), opts...)
}

// AssumeRole assumes role name as the admin identity and returns the
// temporary credentials.
func (sw *SeaweedFS) AssumeRole(ctx context.Context, role, session string) (aws.Credentials, error) {
	out, err := sw.STSClient(sw.AdminCredentials()).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(RoleARN(role)),
		RoleSessionName: aws.String(session),
	})
	if err != nil {
		return aws.Credentials{}, err
	}
	return stsCredentials(out.Credentials.AccessKeyId, out.Credentials.SecretAccessKey, out.Credentials.SessionToken, out.Credentials.Expiration), nil
}

// AssumeRoleWithWebIdentity exchanges token for role's credentials (an
// unsigned STS call, as the SDKs make it).
func (sw *SeaweedFS) AssumeRoleWithWebIdentity(ctx context.Context, role, session, token string) (aws.Credentials, error) {
	out, err := sw.STSClient(aws.AnonymousCredentials{}).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(RoleARN(role)),
		RoleSessionName:  aws.String(session),
		WebIdentityToken: aws.String(token),
	})
	if err != nil {
		return aws.Credentials{}, err
	}
	return stsCredentials(out.Credentials.AccessKeyId, out.Credentials.SecretAccessKey, out.Credentials.SessionToken, out.Credentials.Expiration), nil
}

func stsCredentials(id, secret, token *string, exp *time.Time) aws.Credentials {
	c := aws.Credentials{
		AccessKeyID:     aws.ToString(id),
		SecretAccessKey: aws.ToString(secret),
		SessionToken:    aws.ToString(token),
		Source:          "peers",
	}
	if exp != nil {
		c.CanExpire, c.Expires = true, *exp
	}
	return c
}

// LogOnFailure writes the end of the SeaweedFS log to t if t fails. Use it
// with a shared instance, whose lifetime is not tied to t.
func (sw *SeaweedFS) LogOnFailure(t testing.TB) {
	t.Cleanup(func() { logIfFailed(t, sw.failureLog) })
}

// failureLog is what a failed test shows of the SeaweedFS log.
func (sw *SeaweedFS) failureLog() string {
	return fmt.Sprintf("SeaweedFS log (%s), last lines:\n%s", sw.LogPath, sw.LogTail(60))
}

// socketsFile lists the Unix sockets of the last SeaweedFS started in a dir.
const socketsFile = "sockets"

// sockets are the Unix sockets SeaweedFS derives from its ports. They live
// in /tmp whatever TMPDIR says, and SeaweedFS does not always remove them
// (never after SIGKILL).
func (p seaweedPorts) sockets() []string {
	if p.s3 == 0 {
		return nil
	}
	return []string{
		fmt.Sprintf("/tmp/seaweedfs-master-grpc-%d.sock", p.masterGRPC),
		fmt.Sprintf("/tmp/seaweedfs-volume-grpc-%d.sock", p.volumeGRPC),
		fmt.Sprintf("/tmp/seaweedfs-filer-%d.sock", p.filer),
		fmt.Sprintf("/tmp/seaweedfs-filer-grpc-%d.sock", p.filerGRPC),
		fmt.Sprintf("/tmp/seaweedfs-s3-%d.sock", p.s3),
		fmt.Sprintf("/tmp/seaweedfs-s3-grpc-%d.sock", p.s3GRPC),
		fmt.Sprintf("/tmp/seaweedfs-admin-grpc-%d.sock", p.adminGRPC),
	}
}
