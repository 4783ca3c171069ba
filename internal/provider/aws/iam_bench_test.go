package aws

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/keyferry/keyferry/internal/testutil"
)

// BenchmarkCreateDeleteUser measures one dynamic IAM user's life, CreateUser
// then DeleteUser, through the SDK against the in-process fake IAM on
// loopback (signatures verified), from many goroutines. The fake and the
// client share the machine's CPUs, so ns/op is client + server cost;
// iam-calls/op is how many IAM requests one user costs, which is what
// counts against AWS's IAM quotas.
//
//	go test -run '^$' -bench CreateDeleteUser -benchmem ./internal/provider/aws/
func BenchmarkCreateDeleteUser(b *testing.B) {
	cases := []struct {
		name string
		spec func(name string) UserSpec
	}{
		{name: "key-only", spec: func(n string) UserSpec { return UserSpec{UserName: n, Tags: []Tag{{"keyferry:lease", n}}} }},
		{name: "full", spec: fullSpec}, // inline + 2 managed + 2 groups + boundary + tags
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			fake := newIAMFake(b, testutil.WithoutIAMRecording())
			p := newIAMProvider(b, fake)
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := "ci-bench-" + strconv.FormatInt(seq.Add(1), 10)
					if _, err := p.CreateUser(b.Context(), c.spec(name)); err != nil {
						b.Error(err)
						return
					}
					if err := p.DeleteUser(b.Context(), name, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(fake.Calls())/float64(b.N), "iam-calls/op")
			b.ReportMetric(float64(fake.Calls())/b.Elapsed().Seconds(), "iam-calls/s")
			if n := len(fake.Users()); n != 0 {
				b.Fatalf("got %d users left, want 0", n)
			}
		})
	}
}
