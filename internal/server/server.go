// Package server is keyferry's composition root: it turns a validated
// config into running components (store, audit sink, verifier, registry,
// AWS provider, lease manager, HTTP API) and runs the long-lived ones in
// one task group that stops everything on the first error or on shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/config"
	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/httpapi"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/metrics"
	awsprov "github.com/keyferry/keyferry/internal/provider/aws"
	"github.com/keyferry/keyferry/internal/registry"
	"github.com/keyferry/keyferry/internal/storage"
	"github.com/keyferry/keyferry/internal/storage/backend"
)

// DevIssuerName is the issuer dev mode creates.
const DevIssuerName = "dev"

// Options are the inputs of Run besides the config.
type Options struct {
	// Out receives the dev-mode banner (admin token, addresses).
	Out io.Writer
	// DevAdminToken fixes dev mode's admin token (kfa_… format).
	DevAdminToken string
	Logger        *slog.Logger
	// Minter replaces the AWS provider (benchmarks and tests only).
	Minter lease.Minter
	// Users and Denier replace the AWS provider's IAM side (tests and
	// benchmarks only).
	Users  Users
	Denier lease.SessionDenier
	// Listener, if set, is used instead of listening on cfg.Listen.
	Listener net.Listener
}

// Users creates and deletes the IAM users of iam_user leases.
type Users interface {
	lease.UserCreator
	lease.UserRemover
}

// Run serves until ctx is cancelled, then shuts down gracefully. It does
// not change cfg.
func Run(ctx context.Context, in *config.Config, opts Options) error {
	c := *in
	cfg := &c
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	m := metrics.New()

	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("server: listen: %w", err)
		}
	}
	defer ln.Close()
	// With port 0 the real address is known only now.
	if strings.HasSuffix(cfg.Listen, ":0") {
		cfg.Listen = ln.Addr().String()
		if u, err := url.Parse(cfg.PublicURL); err == nil && strings.HasSuffix(u.Host, ":0") {
			u.Host = cfg.Listen
			cfg.PublicURL = u.String()
		}
	}

	store, err := backend.Open(cfg.Storage)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	sink, err := audit.OpenFile(cfg.Audit.Path, audit.Options{OnFlush: m.AuditFlush})
	if err != nil {
		return fmt.Errorf("server: audit log: %w", err)
	}
	// Closed by its Run in the task group below; this covers the returns
	// before it starts.
	defer func() {
		if err := sink.Close(); err != nil && !errors.Is(err, audit.ErrClosed) {
			log.Error("closing the audit log", "err", err)
		}
	}()
	if rec := sink.Recovered(); rec != "" {
		log.Warn("audit log repaired at start-up", "path", cfg.Audit.Path, "detail", rec)
	}

	verifier := identity.NewVerifier(identity.Config{Logger: log.With("component", "identity"), OnJWKSFetch: m.JWKSFetch})
	reg := registry.New(registry.Config{Store: store, Audit: sink, Issuers: verifier})
	problems, err := reg.Load(ctx)
	if err != nil {
		return fmt.Errorf("server: load roles: %w", err)
	}
	for _, p := range problems {
		log.Warn("role left out of service", "problem", p.Error())
	}

	minter, users, denier := opts.Minter, opts.Users, opts.Denier
	if minter == nil || users == nil || denier == nil {
		p, err := awsprov.New(ctx, awsprov.Config{
			Region: cfg.AWS.Region, Endpoint: cfg.AWS.STSEndpoint, IAMEndpoint: cfg.AWS.IAMEndpoint, IAMRegion: cfg.AWS.IAMRegion, CallTimeout: cfg.AWS.CallTimeout.D(),
			MaxAttempts: cfg.AWS.MaxAttempts, Logger: log.With("component", "aws"),
		})
		if err != nil {
			return fmt.Errorf("server: aws: %w", err)
		}
		if minter == nil {
			minter = p
		}
		if users == nil {
			users = iamUsers{p}
		}
		if denier == nil {
			denier = p
		}
	}

	var dev *devissuer.Issuer
	if cfg.Dev {
		if dev, err = setupDev(ctx, cfg, store, reg, opts); err != nil {
			return err
		}
	} else if ok, err := admintoken.Any(ctx, store); err != nil {
		return fmt.Errorf("server: %w", err)
	} else if !ok {
		return errors.New("server: no admin token exists: run `keyferry server init` first (it creates the store and prints the first admin token)")
	}

	leaseLog := log.With("component", "lease")
	issuer := lease.NewIssuer(lease.IssuerConfig{
		Store: store, Audit: sink, Verifier: verifier, Roles: reg, Minter: minter, Users: users, Observer: m,
		Logger: leaseLog, DefaultRegion: cfg.AWS.Region,
	})
	leases := lease.NewLifecycle(lease.LifecycleConfig{
		Store: store, Audit: sink, Roles: reg, Users: users, Denier: denier, Observer: m, Logger: leaseLog,
		Tuning: lease.Tuning{
			Workers: cfg.Leases.RevocationWorkers, RevocationsPerSecond: cfg.Leases.RevocationsPerSecond,
			MaxAttempts: cfg.Leases.MaxRevokeAttempts, SweepInterval: cfg.Leases.OrphanSweepInterval.D(),
			OrphanGrace: cfg.Leases.OrphanGrace.D(), SweepDryRun: cfg.Leases.OrphanSweepDryRun, SweepPaths: cfg.Leases.UserPaths,
		},
	})
	handler := httpapi.New(httpapi.Config{
		Issuer: issuer, Leases: leases, Registry: reg, Verifier: verifier, Tokens: admintoken.New(admintoken.Config{Store: store, Audit: sink}), Metrics: m, Logger: log.With("component", "http"),
		MaxBodyBytes: cfg.Limits.MaxBodyBytes, Dev: dev, DevAudience: cfg.PublicURL,
		Ready: func(ctx context.Context) error {
			_, err := store.Get(ctx, "ready-probe")
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("store: %w", err)
			}
			return leases.Healthy()
		},
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLS.Enabled() {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}

	if err := sink.Write(ctx, &audit.Event{Type: audit.TypeServerStart, Message: "keyferry server started", Actor: "keyferry"}); err != nil {
		return fmt.Errorf("server: audit log is not writable: %w", err)
	}
	log.Info("keyferry server ready", "listen", ln.Addr().String(), "tls", cfg.TLS.Enabled(), "storage", cfg.Storage,
		"audit", cfg.Audit.Path, "dev", cfg.Dev, "roles", len(reg.Roles()), "issuers", len(reg.Issuers()))

	// Two tiers: the parts that write audit events (the HTTP server and
	// the lease lifecycle) stop first; then the audit sink closes, writing
	// what they queued, and reports its close error like any other part.
	g, gctx := errgroup.WithContext(ctx)
	writers, wctx := errgroup.WithContext(gctx)
	writers.Go(func() error {
		var err error
		if cfg.TLS.Enabled() {
			err = srv.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("server: http: %w", err)
	})
	writers.Go(func() error { return leases.Run(wctx) })
	writers.Go(func() error { return verifier.Run(wctx) })
	writers.Go(func() error {
		<-wctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout.D())
		defer cancel()
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("server: shutdown: %w", err)
		}
		return nil
	})
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	g.Go(func() error {
		defer stopSink()
		return writers.Wait()
	})
	g.Go(func() error {
		if err := sink.Run(sinkCtx); err != nil {
			return fmt.Errorf("server: audit log: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// setupDev creates the dev issuer (served by this server under /dev/oidc),
// registers it, and makes sure an admin token exists, printing it.
func setupDev(ctx context.Context, cfg *config.Config, store storage.Store, reg *registry.Registry, opts Options) (*devissuer.Issuer, error) {
	issURL := strings.TrimSuffix(cfg.PublicURL, "/") + "/dev/oidc"
	dev, err := devissuer.New(issURL)
	if err != nil {
		return nil, fmt.Errorf("server: dev issuer: %w", err)
	}
	if _, err := reg.PutIssuer(ctx, identity.Issuer{
		Name: DevIssuerName, Kind: identity.KindGitLab, URL: issURL, Audiences: []string{cfg.PublicURL},
		// A restarted dev server has a new key: refetch quickly.
		JWKSRefreshCooldown: dur.Duration(time.Second),
	}, audit.Origin{Actor: "keyferry --dev"}); err != nil {
		return nil, fmt.Errorf("server: dev issuer: %w", err)
	}
	token := opts.DevAdminToken
	if token != "" {
		if _, err := admintoken.CreateWithValue(ctx, store, token, "dev-root", []string{admintoken.ScopeAll}, time.Now()); err != nil {
			return nil, fmt.Errorf("server: --dev-admin-token: %w", err)
		}
	} else {
		if token, _, err = admintoken.Create(ctx, store, "dev-root", []string{admintoken.ScopeAll}, time.Now()); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	fmt.Fprintf(opts.Out, `keyferry dev server — NOT FOR PRODUCTION (throwaway signing key, an all-powerful admin token, plain HTTP)

  API:          %s
  Admin token:  %s
  Dev issuer:   %s (issuer name %q, audience %q)
  Storage:      %s
  Audit log:    %s

  export KEYFERRY_ADDR=%s
  export KEYFERRY_TOKEN=%s
  keyferry dev token --project group/app     # mint a GitLab-shaped job token

`, cfg.PublicURL, token, issURL, DevIssuerName, cfg.PublicURL, cfg.Storage, cfg.Audit.Path, cfg.PublicURL, token)
	return dev, nil
}

// DevDefaults points a dev config at a fresh temp directory unless the
// caller chose paths. The orphan sweep is off unless configured: a dev
// server started with real AWS credentials must not delete the users of
// another keyferry.
func DevDefaults(cfg *config.Config) (cleanup func(), err error) {
	cleanup = func() {}
	if cfg.Leases.OrphanSweepInterval == 0 {
		cfg.Leases.OrphanSweepInterval = -1
	}
	if cfg.Storage != "" && cfg.Audit.Path != "" {
		return cleanup, nil
	}
	dir, err := os.MkdirTemp("", "keyferry-dev-")
	if err != nil {
		return cleanup, err
	}
	if cfg.Storage == "" {
		cfg.Storage = "bolt://" + filepath.Join(dir, "keyferry.db")
	}
	if cfg.Audit.Path == "" {
		cfg.Audit.Path = filepath.Join(dir, "audit.log")
	}
	return func() { os.RemoveAll(dir) }, nil
}

// Init creates the store and the first admin token. It refuses to run
// twice: a lost root token is replaced with `keyferry admin-token create`
// from another token, never by re-initialising.
func Init(ctx context.Context, cfg *config.Config, out io.Writer) (err error) {
	store, err := backend.Open(cfg.Storage)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("init: %w", cerr)
		}
	}()
	ok, err := admintoken.Any(ctx, store)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if ok {
		return errors.New("init: this store is already initialised (an admin token exists)")
	}
	sink, err := audit.OpenFile(cfg.Audit.Path, audit.Options{})
	if err != nil {
		return fmt.Errorf("init: audit log: %w", err)
	}
	tokens := admintoken.New(admintoken.Config{Store: store, Audit: sink})
	tok, _, err := tokens.Create(ctx, "root", []string{admintoken.ScopeAll}, audit.Origin{Actor: "keyferry server init"})
	if cerr := sink.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("audit log: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(out, "Initialised %s.\n\nRoot admin token (shown once, store it in a secret manager):\n\n  %s\n\n", cfg.Storage, tok)
	return nil
}
