package redistest

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Cluster nodes need ports of their own choosing: a node's cluster bus
// listens on its port + 10000 unless --cluster-port says otherwise, and
// Redis refuses cluster mode on a port above 55535 without it. The
// kernel's ephemeral ports (32768–60999 on Linux) are mostly above that, so
// FreePort does not do for them; lowPortMin and lowPortMax bound a range
// below the ephemeral one, where the kernel hands out no outgoing
// connection's port either.
const (
	lowPortMin = 20000
	lowPortMax = 32000 // exclusive
)

var (
	lowPortsMu sync.Mutex       // protects lowPorts
	lowPorts   = map[int]bool{} // ports handed out by this process
)

// FreeLowPort returns a TCP port of 127.0.0.1 between 20000 and 31999 that
// was free a moment ago and that this process has not handed out before,
// for a cluster node's data or bus port. Another process may take it
// before the caller binds it; the cluster launcher retries when that
// happens.
func FreeLowPort(t testing.TB) int {
	t.Helper()
	lowPortsMu.Lock()
	defer lowPortsMu.Unlock()
	for try := 0; try < 1000; try++ {
		port := lowPortMin + rand.IntN(lowPortMax-lowPortMin)
		if lowPorts[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		lowPorts[port] = true
		return port
	}
	t.Fatalf("redistest: no free port found between %d and %d", lowPortMin, lowPortMax-1)
	return 0
}
