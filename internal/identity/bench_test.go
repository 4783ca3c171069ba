package identity_test

import (
	"context"
	"testing"
)

// BenchmarkVerify measures the hot path: an RS256 (RSA-2048) GitLab token
// whose issuer's keys are already cached, verified from parallel
// goroutines. The "replay" variant adds the jti check (one use per token
// would make every iteration after the first a rejection, so it allows
// b.N uses).
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name   string
		replay bool
	}{{"cached-keys", false}, {"cached-keys+replay", true}} {
		b.Run(bc.name, func(b *testing.B) {
			idp := newIdP(b, "rsa1.pem")
			is := idp.issuer()
			if bc.replay {
				is.ReplayMaxUses = b.N + 1
			}
			v := newVerifier(b, newClock(t0), nil, is)
			tok := idp.sign(b, idp.gitlabClaims())
			if _, err := v.Verify(context.Background(), tok); err != nil { // warm the key cache
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
