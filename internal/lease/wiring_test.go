package lease

import (
	"context"
	"log/slog"
	"time"

	"github.com/keyferry/keyferry/internal/audit"
	"github.com/keyferry/keyferry/internal/storage"
)

// testLeases is an Issuer and a Lifecycle on one store, wired as the
// server wires them.
type testLeases struct {
	*Issuer
	*Lifecycle
}

// testConfig configures both halves.
type testConfig struct {
	Store    storage.Store
	Audit    audit.Writer
	Verifier Verifier
	Roles    Roles
	Minter   Minter
	Users    interface {
		UserCreator
		UserRemover
	}
	Denier        SessionDenier
	Logger        *slog.Logger
	Now           func() time.Time
	DefaultRegion string
	Tuning        Tuning
}

func newTestLeases(c testConfig) *testLeases {
	ic := IssuerConfig{Store: c.Store, Audit: c.Audit, Verifier: c.Verifier, Roles: c.Roles, Minter: c.Minter,
		Logger: c.Logger, Now: c.Now, DefaultRegion: c.DefaultRegion}
	lcc := LifecycleConfig{Store: c.Store, Audit: c.Audit, Roles: c.Roles, Denier: c.Denier, Logger: c.Logger, Now: c.Now, Tuning: c.Tuning}
	if c.Users != nil {
		ic.Users, lcc.Users = c.Users, c.Users
	}
	return &testLeases{Issuer: NewIssuer(ic), Lifecycle: NewLifecycle(lcc)}
}

// The methods both halves have through records, taken from the Lifecycle.

func (l *testLeases) update(ctx context.Context, id string, fn func(*Lease) error) (*Lease, error) {
	return l.Lifecycle.update(ctx, id, fn)
}

func (l *testLeases) get(ctx context.Context, id string) (*Lease, error) {
	return l.Lifecycle.get(ctx, id)
}

func (l *testLeases) create(ctx context.Context, le *Lease) error { return l.Lifecycle.create(ctx, le) }

// store is the store both halves use.
func (l *testLeases) store() storage.Store { return l.Lifecycle.st }

// setStore makes both halves use st.
func (l *testLeases) setStore(st storage.Store) { l.Issuer.st, l.Lifecycle.st = st, st }
