package audit_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/keyferry/keyferry/internal/audit"
)

func Example() {
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit.log")

	sink, err := audit.OpenFile(path, audit.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ev := &audit.Event{Type: audit.TypeIssue, Role: "deploy", Decision: audit.DecisionAllow, AccessKeyID: "ASIAEXAMPLE"}
	if err := sink.Write(context.Background(), ev); err != nil {
		log.Fatal(err) // fail closed: no credentials without an audit record
	}
	if err := sink.Close(); err != nil {
		log.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d event(s), seq %d..%d, genesis: %t, last hash recorded by Write: %t\n",
		rep.Events, rep.First, rep.Last, rep.FirstPrevHash == "", rep.LastHash == ev.Hash)
	// Output: 1 event(s), seq 1..1, genesis: true, last hash recorded by Write: true
}
