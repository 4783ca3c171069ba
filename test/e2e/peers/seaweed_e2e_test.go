//go:build e2e

package peers

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestSeaweedFSRetriesALostBindRace: when a port picked for SeaweedFS is
// taken before SeaweedFS binds it, the launch retries with fresh ports.
func TestSeaweedFSRetriesALostBindRace(t *testing.T) {
	squatter, err := net.Listen("tcp", Loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	taken := squatter.Addr().(*net.TCPAddr).Port

	calls := 0
	pick := func(n int) ([]int, error) {
		calls++
		ports, err := freePorts(n)
		if calls == 1 && err == nil {
			ports[6] = taken // the S3 port: SeaweedFS exits when it is taken
		}
		return ports, err
	}
	sw, err := launchSeaweedFS(SeaweedConfig{}, t.TempDir(), pick)
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	defer sw.Close()
	if calls != 2 {
		t.Errorf("port picks: got %d, want 2", calls)
	}
	if strings.HasSuffix(sw.Endpoint, ":"+strconv.Itoa(taken)) {
		t.Errorf("endpoint %s uses the taken port", sw.Endpoint)
	}
	if !strings.Contains(sw.LogTail(1000), "Port allocation failed") {
		t.Errorf("the log does not show the lost race:\n%s", sw.LogTail(20))
	}
}
