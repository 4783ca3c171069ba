package delivery

import (
	"context"
	"errors"
	"sync"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/tokensource"
)

// Broker is the Source backed by a keyferry broker: the first call
// exchanges the job token for credentials and a refresh handle; later
// calls trade the handle, which keeps working after the job token has
// expired, until the role's max_ttl. When the broker refuses the handle
// (revoked lease, max_ttl reached, role changed), Broker falls back to the
// job token once more: a file or GitHub source may have a fresh one.
type Broker struct {
	Client *client.Client
	Role   string
	Tokens tokensource.Source
	// TTLSeconds optionally asks for shorter credentials than the role's.
	TTLSeconds int64
	// OnRefreshError, if set, hears refresh failures that were recovered
	// from by a token exchange (for logging; never carries a secret).
	OnRefreshError func(error)

	mu     sync.Mutex
	handle string
}

// NewBrokerWithHandle returns a Broker that starts from an existing
// refresh handle (e.g. one kept in the credential_process cache).
func NewBrokerWithHandle(c *client.Client, role string, tokens tokensource.Source, handle string) *Broker {
	return &Broker{Client: c, Role: role, Tokens: tokens, handle: handle}
}

// Handle returns the current refresh handle ("" before the first call or
// for roles without refresh). It is a secret.
func (b *Broker) Handle() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.handle
}

// Credentials implements Source. Calls are serialised: two concurrent
// refreshes with one handle would look like a stolen handle to the broker.
func (b *Broker) Credentials(ctx context.Context) (*api.CredsResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.handle != "" {
		resp, err := b.Client.Refresh(ctx, b.handle)
		if err == nil {
			b.handle = resp.RefreshHandle
			return resp, nil
		}
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status >= 500 || ae.Code == "refresh_conflict" {
			// Transient: keep the handle, which is still valid.
			return nil, err
		}
		b.handle = ""
		if b.OnRefreshError != nil {
			b.OnRefreshError(err)
		}
	}
	if b.Tokens == nil {
		return nil, errors.New("no job token source to request new credentials with")
	}
	tok, err := b.Tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := b.Client.Creds(ctx, api.CredsRequest{Role: b.Role, Token: tok, TTLSeconds: b.TTLSeconds})
	if err != nil {
		return nil, err
	}
	b.handle = resp.RefreshHandle
	return resp, nil
}
