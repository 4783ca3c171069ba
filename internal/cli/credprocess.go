package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/delivery"
	"github.com/keyferry/keyferry/internal/delivery/proccache"
	"github.com/keyferry/keyferry/internal/tokensource"
)

func newCredentialProcessCmd(e *env) *cobra.Command {
	var (
		cacheDir     string
		noCache      bool
		minRemaining time.Duration
		jf           jobFlags
	)
	cmd := &cobra.Command{
		Use:   "credential-process --role R",
		Short: "Serve credentials to AWS SDKs through credential_process, cached and refreshed",
		Long: `Print credentials in the credential_process format, for ~/.aws/config:

  [profile ci]
  credential_process = keyferry credential-process --role deploy

Every aws command runs it again, so it caches on disk (mode 0600, per broker,
role and job identity) and answers from the cache while more than 15 minutes
remain; below that it refreshes with the lease's refresh handle (which keeps
working after the job token expired, until the role's max_ttl), or exchanges
the job token again. Many concurrent invocations make one broker request.
Errors go to stderr without secrets, and the exit status is non-zero.

The cache lives in $KEYFERRY_CACHE_DIR, else $XDG_CACHE_HOME/keyferry/creds,
else ~/.cache/keyferry/creds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, tokens, err := jf.connect(e)
			if err != nil {
				return err
			}
			addr := first(e.addr, e.getenv("KEYFERRY_ADDR"))
			fetch := func(ctx context.Context, stale *proccache.Entry) (*proccache.Entry, error) {
				handle := ""
				if stale != nil {
					handle = stale.RefreshHandle
				}
				b := delivery.NewBrokerWithHandle(c, jf.role, tokens, handle)
				b.TTLSeconds = jf.ttl
				resp, err := b.Credentials(ctx)
				if err != nil {
					return nil, err
				}
				return &proccache.Entry{Response: *resp, RefreshHandle: b.Handle()}, nil
			}
			resp, err := cachedCreds(cmd.Context(), e, addr, jf.role, tokens, cacheDir, noCache, minRemaining, fetch)
			if err != nil {
				return err
			}
			return delivery.Write(e.stdout, "credential-process", resp)
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "cache directory (default: see above)")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "do not read or write the disk cache")
	cmd.Flags().DurationVar(&minRemaining, "min-remaining", proccache.DefaultMinRemaining, "serve from the cache only while this much lifetime remains")
	jf.register(cmd)
	return cmd
}

// cachedCreds answers from the disk cache when it can. The cache key is
// the broker, the role and the job's identity; with no job identity to key
// on, or an unsafe cache directory, it fetches without the cache.
func cachedCreds(ctx context.Context, e *env, addr, role string, tokens tokensource.Source, dir string, noCache bool, minRemaining time.Duration,
	fetch func(context.Context, *proccache.Entry) (*proccache.Entry, error)) (*api.CredsResponse, error) {
	direct := func() (*api.CredsResponse, error) {
		ent, err := fetch(ctx, nil)
		if err != nil {
			return nil, err
		}
		return &ent.Response, nil
	}
	if noCache {
		return direct()
	}
	ident := jobIdentity(ctx, e, tokens)
	if ident == "" {
		return direct()
	}
	if dir == "" {
		d, err := proccache.DefaultDir(e.getenv)
		if err != nil {
			fmt.Fprintf(e.stderr, "keyferry: credential cache disabled: %v\n", err)
			return direct()
		}
		dir = d
	}
	cache := &proccache.Cache{Dir: dir, MinRemaining: minRemaining, Warn: func(msg string) { fmt.Fprintln(e.stderr, "keyferry: warning:", msg) }}
	ent, _, err := cache.Get(ctx, proccache.Key(addr, role, ident), func(ctx context.Context, stale *proccache.Entry) (*proccache.Entry, error) {
		ent, err := fetch(ctx, stale)
		if ent != nil {
			ent.Identity = ident
		}
		return ent, err
	})
	if errors.Is(err, proccache.ErrUnsafeDir) {
		fmt.Fprintf(e.stderr, "keyferry: warning: %v; fetching without the cache\n", err)
		return direct()
	}
	if err != nil {
		return nil, err
	}
	return &ent.Response, nil
}

// jobIdentity names the job for the cache key without calling out: the
// token's unverified iss/sub/job claims for env and file tokens, the run
// variables for GitHub Actions (whose tokens must be requested).
func jobIdentity(ctx context.Context, e *env, src tokensource.Source) string {
	if _, ok := src.(tokensource.GitHubActions); ok {
		repo, run, attempt, job := e.getenv("GITHUB_REPOSITORY"), e.getenv("GITHUB_RUN_ID"), e.getenv("GITHUB_RUN_ATTEMPT"), e.getenv("GITHUB_JOB")
		if repo == "" || run == "" {
			return ""
		}
		return "github|" + repo + "|" + run + "|" + attempt + "|" + job
	}
	tok, err := src.Token(ctx)
	if err != nil {
		return ""
	}
	return proccache.TokenIdentity(tok)
}
