// Command runnerprobe links only the runner-side packages (the broker
// client, the delivery channels, the credential_process cache and the job
// token sources) and calls into each, so that its binary size and package
// init time measure what those packages weigh on their own, apart from the
// one keyferry binary that also links the broker. docs/benchmarks.md
// ("Runner-side dependency budget") has the commands and the numbers.
//
// It is a measurement program: run against no broker
// (KEYFERRY_ADDR=http://127.0.0.1:1) it fails after init, which is all a
// measurement of init cost needs.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/delivery"
	"github.com/keyferry/keyferry/internal/delivery/proccache"
	"github.com/keyferry/keyferry/internal/tokensource"
)

func main() {
	ctx := context.Background()
	c, err := client.New(os.Getenv("KEYFERRY_ADDR"), client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	src, err := tokensource.New(tokensource.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	b := delivery.NewBrokerWithHandle(c, "r", src, "")
	cache := &proccache.Cache{Dir: os.TempDir()}
	ent, _, err := cache.Get(ctx, proccache.Key("a", "r", "i"), func(ctx context.Context, _ *proccache.Entry) (*proccache.Entry, error) {
		resp, err := b.Credentials(ctx)
		if err != nil {
			return nil, err
		}
		return &proccache.Entry{Response: *resp}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = delivery.Write(os.Stdout, "credential-process", &ent.Response)
	// The admin reads, so that the client's api types are linked too.
	_, _ = c.Roles(ctx)
	_, _, _ = c.Leases(ctx, client.LeaseFilter{})
	_, _ = c.Issuers(ctx)
}
