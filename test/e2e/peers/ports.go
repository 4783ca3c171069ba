package peers

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Ports for peers that must be told a port number up front (SeaweedFS opens
// ten listeners from flags) are drawn at random BELOW the Linux ephemeral
// range (32768–60999 by default). A port that is merely free at the moment
// of the check can be taken by any outbound connection before the peer
// binds it if it lies inside the ephemeral range; SeaweedFS itself warns
// about that ("… is at or above the Linux ephemeral floor 32768; an
// outbound connection may claim it before Admin binds it"). Below the floor
// only another listener can race us, and LaunchSeaweedFS retries with fresh
// ports when a bind fails.
const (
	portLow  = 20000
	portHigh = 32767
)

// freePorts returns n distinct loopback ports that were free when checked.
func freePorts(n int) ([]int, error) {
	seen := make(map[int]bool, n)
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 2000 {
			return nil, fmt.Errorf("peers: no %d free loopback ports in %d-%d", n, portLow, portHigh)
		}
		p := portLow + rand.IntN(portHigh-portLow+1)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort(Loopback, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}
