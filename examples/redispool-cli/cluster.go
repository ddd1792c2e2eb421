package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
)

// clusterJSON is a cluster's statistics for --json output: every node's
// pool, with the slots it serves, and the cluster's counters.
type clusterJSON struct {
	Masters       int        `json:"masters"`        // nodes serving slots
	SlotsServed   int        `json:"slots_served"`   // of 16384
	Nodes         []nodeJSON `json:"nodes"`          // by address
	PendingNodes  int        `json:"pending_nodes"`  // pools of nodes known only from redirects
	Moved         int64      `json:"moved"`          // MOVED replies followed or returned
	Ask           int64      `json:"ask"`            // ASK replies
	TryAgain      int64      `json:"tryagain"`       // TRYAGAIN replies
	ClusterDown   int64      `json:"clusterdown"`    // CLUSTERDOWN replies
	Retries       int64      `json:"retries"`        // commands sent again
	Refreshes     int64      `json:"refreshes"`      // slot-map reloads
	RefreshErrors int64      `json:"refresh_errors"` // failed reloads
}

// nodeJSON is one node of a cluster. Ops and OpsPerSec are the borrows
// from its pool during a bench run: one per operation that ran there.
type nodeJSON struct {
	Addr      string   `json:"addr"`
	Slots     int      `json:"slots"` // 0 for a replica, or a node known from a redirect only
	Ops       int64    `json:"ops,omitempty"`
	OpsPerSec float64  `json:"ops_per_sec,omitempty"`
	Pool      poolJSON `json:"pool"`
}

// clusterJSONOf summarizes cs; with before, a snapshot taken when the run
// started, and the run's length, it also gives each node's operations.
func clusterJSONOf(cs redispool.ClusterStats, before *redispool.ClusterStats, elapsed time.Duration) *clusterJSON {
	c := &clusterJSON{
		Moved:         cs.Moved,
		Ask:           cs.Ask,
		TryAgain:      cs.TryAgain,
		ClusterDown:   cs.ClusterDown,
		Retries:       cs.Retries,
		Refreshes:     cs.Refreshes,
		RefreshErrors: cs.RefreshErrors,
		PendingNodes:  cs.PendingNodes,
		Nodes:         []nodeJSON{},
	}
	for addr, n := range cs.Slots {
		if n > 0 {
			c.Masters++
			c.SlotsServed += n
		}
		if _, ok := cs.Nodes[addr]; !ok {
			cs.Nodes[addr] = redispool.Stats{} // a master with no pool yet
		}
	}
	for _, addr := range slices.Sorted(maps.Keys(cs.Nodes)) {
		st := cs.Nodes[addr]
		n := nodeJSON{Addr: addr, Slots: cs.Slots[addr], Pool: poolJSONOf(st)}
		if before != nil {
			// A command sent with Do is a borrow, or one of the
			// pipelined commands (whose shared connection's own borrow
			// is one more, among many commands).
			b := before.Nodes[addr]
			n.Ops = st.Borrows - b.Borrows + st.PipelinedCommands - b.PipelinedCommands
			n.OpsPerSec = perSec(rate(n.Ops, elapsed))
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c
}

// writeClusterStats prints the slot-map summary, one row per node with
// its pool (and, after a bench run, its share of the operations), and
// the redirect and retry counters.
func writeClusterStats(w io.Writer, c *clusterJSON, withOps bool) {
	fmt.Fprintf(w, "  slot map: %d masters serve %s of 16,384 slots\n", c.Masters, fmtInt(int64(c.SlotsServed)))
	var total int64
	for _, n := range c.Nodes {
		total += n.Ops
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if withOps {
		fmt.Fprintf(tw, "  node\tslots\tops\tops/s\tshare\tactive\tidle\tshared\tmax\tcreated\tdestroyed\t\n")
	} else {
		fmt.Fprintf(tw, "  node\tslots\tborrows\tpipelined\tactive\tidle\tshared\tmax\twaits\ttimeouts\tcreated\tdestroyed\t\n")
	}
	for _, n := range c.Nodes {
		p := n.Pool
		if withOps {
			share := 0.0
			if total > 0 {
				share = 100 * float64(n.Ops) / float64(total)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.1f%%\t%d\t%d\t%d\t%d\t%s\t%s\t\n", n.Addr, fmtInt(int64(n.Slots)),
				fmtInt(n.Ops), fmtInt(int64(n.OpsPerSec)), share, p.Active, p.Idle, p.Shared, p.MaxTotal,
				fmtInt(p.Created), fmtInt(p.Destroyed))
		} else {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", n.Addr, fmtInt(int64(n.Slots)),
				fmtInt(p.Borrows), fmtInt(p.PipelinedCommands), p.Active, p.Idle, p.Shared, p.MaxTotal, fmtInt(p.Waits), fmtInt(p.Timeouts),
				fmtInt(p.Created), fmtInt(p.Destroyed))
		}
	}
	tw.Flush()
	parts := []string{
		"moved " + fmtInt(c.Moved), "ask " + fmtInt(c.Ask), "tryagain " + fmtInt(c.TryAgain),
		"clusterdown " + fmtInt(c.ClusterDown), "retries " + fmtInt(c.Retries),
		fmt.Sprintf("slot-map reloads %s (%s failed)", fmtInt(c.Refreshes), fmtInt(c.RefreshErrors)),
	}
	fmt.Fprintf(w, "  redirects: %s\n", strings.Join(parts, ", "))
	if c.PendingNodes > 0 {
		fmt.Fprintf(w, "  %d node(s) known only from redirects, awaiting a slot map that lists them\n", c.PendingNodes)
	}
}

// keyspaceCommand reports whether cmd, without a key, acts on the
// keyspace of the one node it reaches: on a cluster, one master's part.
func keyspaceCommand(cmd string) bool {
	switch strings.ToUpper(cmd) {
	case "DBSIZE", "FLUSHALL", "FLUSHDB", "KEYS", "SCAN", "RANDOMKEY":
		return true
	}
	return false
}

// checkAllMasters refuses what do --all-masters cannot combine: a SCAN
// from another cursor than 0, which means nothing on another master.
func checkAllMasters(args []string) error {
	if strings.EqualFold(args[0], "SCAN") && (len(args) < 2 || args[1] != "0") {
		return usagef("--all-masters SCAN iterates every master from cursor 0 to the end: give cursor 0")
	}
	return nil
}

// doAllMasters runs cmd on every master of the cluster and combines the
// replies: DBSIZE summed; KEYS concatenated; SCAN iterated to the end on
// each master, its keys concatenated under cursor 0; any other reply
// once if every master gave the same, else as address, reply, ... by
// address.
func (s *server) doAllMasters(ctx context.Context, cmd string, args []any) (any, error) {
	var mu sync.Mutex
	replies := make(map[string]any)
	scan := strings.EqualFold(cmd, "SCAN")
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, p *redispool.Pool) error {
		var reply any
		var err error
		if scan {
			reply, err = scanAll(ctx, p, args[1:])
		} else {
			reply, err = p.Do(ctx, cmd, args...)
		}
		if err != nil {
			return err
		}
		mu.Lock()
		replies[p.Addr()] = reply
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	addrs := slices.Sorted(maps.Keys(replies))
	switch strings.ToUpper(cmd) {
	case "DBSIZE":
		var total int64
		for _, a := range addrs {
			n, _ := replies[a].(int64)
			total += n
		}
		return total, nil
	case "KEYS":
		keys := []any{}
		for _, a := range addrs {
			ks, _ := replies[a].([]any)
			keys = append(keys, ks...)
		}
		return keys, nil
	case "SCAN":
		keys := []any{}
		for _, a := range addrs {
			keys = append(keys, replies[a].([]any)...)
		}
		return []any{[]byte("0"), keys}, nil
	}
	same := true
	for _, a := range addrs[1:] {
		same = same && fmt.Sprint(replies[a]) == fmt.Sprint(replies[addrs[0]])
	}
	if same && len(addrs) > 0 {
		return replies[addrs[0]], nil
	}
	var out []any
	for _, a := range addrs {
		out = append(out, []byte(a), replies[a])
	}
	return out, nil
}

// scanAll runs SCAN 0 opts... on p until the cursor comes back to 0 and
// returns every key it gave.
func scanAll(ctx context.Context, p *redispool.Pool, opts []any) ([]any, error) {
	keys := []any{}
	cursor := "0"
	for {
		v, err := redis.Values(p.Do(ctx, "SCAN", append([]any{cursor}, opts...)...))
		if err != nil {
			return nil, err
		}
		if len(v) != 2 {
			return nil, fmt.Errorf("SCAN: unexpected reply %v", v)
		}
		page, err := redis.Values(v[1], nil)
		if err != nil {
			return nil, fmt.Errorf("SCAN: %w", err)
		}
		keys = append(keys, page...)
		if cursor, err = redis.String(v[0], nil); err != nil || cursor == "0" {
			return keys, err
		}
	}
}
