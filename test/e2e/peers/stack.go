package peers

import "testing"

// Stack is the usual set of peers for keyferry's e2e tests: a TLS OIDC
// identity provider and a SeaweedFS whose STS trusts it.
type Stack struct {
	IdP       *IdP
	SeaweedFS *SeaweedFS
}

// LaunchStack starts an IdP, then a SeaweedFS configured by configure, which
// receives the IdP so that it can add idp.SeaweedProvider(…) to the config.
// The caller must Close the stack.
func LaunchStack(configure func(idp *IdP) SeaweedConfig) (*Stack, error) {
	idp, err := NewTLSIdP()
	if err != nil {
		return nil, err
	}
	sw, err := LaunchSeaweedFS(configure(idp))
	if err != nil {
		idp.Close()
		return nil, err
	}
	return &Stack{IdP: idp, SeaweedFS: sw}, nil
}

// SharedStack returns a Shared that launches the stack on first use (see
// Shared). Declare it at package level in the test package:
//
//	var stack = peers.SharedStack(func(idp *peers.IdP) peers.SeaweedConfig { … })
//	func TestX(t *testing.T) { s := stack.Get(t); … }
func SharedStack(configure func(idp *IdP) SeaweedConfig) *Shared[*Stack] {
	return NewShared(func() (*Stack, error) { return LaunchStack(configure) }, (*Stack).Close)
}

// Close stops SeaweedFS, then the IdP.
func (s *Stack) Close() {
	s.SeaweedFS.Close()
	s.IdP.Close()
}

// LogOnFailure writes the end of the SeaweedFS log to t if t fails.
func (s *Stack) LogOnFailure(t testing.TB) { s.SeaweedFS.LogOnFailure(t) }
