//go:build e2e

package e2e

import (
	"os"
	"testing"
)

// TestMain stops the peers shared by this test binary and removes the
// keyferry binary it may have built, so that a run leaves nothing behind.
func TestMain(m *testing.M) {
	code := m.Run()
	brokerStack.Close()
	smokeStack.Close()
	removeBuiltKeyferry()
	os.Exit(code)
}
