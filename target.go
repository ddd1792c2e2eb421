package redispool

import "context"

// A target is where a pool's connections go: a fixed address
// (fixedTarget), or the master the Sentinels name (sentinelClient,
// sentinel.go), which moves at a failover. The factory dials through
// it, and the rest of the pool asks it only what this interface asks,
// the way go-redis's Sentinel enters through the dialer and an
// on-failover hook: the pool never branches on which target it has.
type target interface {
	// addr is the address new connections go to, or "" while it is not
	// known yet (before the Sentinels first answered).
	addr() string

	// gen is the generation of the connections made now. A connection
	// whose generation differs was made for where the target was before
	// it moved: it is closed rather than lent or kept. A target that
	// never moves is always of generation 0; one that moves counts from
	// 1, so that generation 0 marks, on its connections, one retired by
	// noteError.
	gen() uint64

	// dial makes a new connection to the target, with the dialFunc the
	// target was made with, and returns it with its generation. It may
	// take longer than one dial — a moving target waits out a failover —
	// but never past ctx.
	dial(ctx context.Context) (*conn, uint64, error)

	// noteError looks at an error a command on one of the target's
	// connections returned, and reports whether that connection must be
	// closed when it is returned (a master that became a replica).
	noteError(err error) (retire bool)

	// String describes the target for Pool.String, with no secret in it.
	String() string

	// close stops the target's goroutines, if any, and waits for them.
	close()
}

// dialFunc dials addr as the pool dials every connection: TLS, AUTH,
// CLIENT SETNAME and SELECT included (factory.dialTo). With ping, a PING
// follows when the dial sent nothing, to prove that the server took the
// connection; a target that sends a command of its own on every new
// connection (Sentinel's ROLE) passes false.
type dialFunc func(ctx context.Context, addr string, ping bool) (*conn, error)

// newTarget returns the target cfg describes. dial is the factory's;
// onMove is called, outside any lock, after the target moved, so that
// the pool closes its idle connections to where it was.
func newTarget(cfg Config, stats *counters, dial dialFunc, onMove func()) target {
	if cfg.Sentinel != nil {
		nodes := &dataNodes{dial: dial, checkTimeout: cfg.CheckTimeout, borrowTimeout: cfg.BorrowTimeout}
		return newSentinel(*cfg.Sentinel, stats, cfg.Logger, nodes, onMove)
	}
	return newFixedTarget(cfg, dial)
}

// fixedTarget is Config.Addr, which never moves.
type fixedTarget struct {
	network, address string
	open             dialFunc
}

var (
	_ target = (*fixedTarget)(nil)
	_ target = (*sentinelClient)(nil)
)

func newFixedTarget(cfg Config, dial dialFunc) *fixedTarget {
	return &fixedTarget{network: cfg.Network, address: cfg.Addr, open: dial}
}

func (t *fixedTarget) addr() string { return t.address }
func (t *fixedTarget) gen() uint64  { return 0 }
func (t *fixedTarget) close()       {}

func (t *fixedTarget) dial(ctx context.Context) (*conn, uint64, error) {
	c, err := t.open(ctx, t.address, true)
	return c, 0, err
}

// noteError retires nothing: an error on a connection to a fixed
// address says nothing about where the next one should go.
func (t *fixedTarget) noteError(error) bool { return false }

func (t *fixedTarget) String() string { return t.network + " " + t.address }
