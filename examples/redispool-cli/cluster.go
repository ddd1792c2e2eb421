package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redispool/redispool"
)

// clusterJSON is a cluster's statistics for --json output: every node's
// pool, with the slots it serves, and the cluster's counters.
type clusterJSON struct {
	Masters       int        `json:"masters"`        // nodes serving slots
	SlotsServed   int        `json:"slots_served"`   // of 16384
	Nodes         []nodeJSON `json:"nodes"`          // by address
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
			n.Ops = st.Borrows - before.Nodes[addr].Borrows
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
		fmt.Fprintf(tw, "  node\tslots\tops\tops/s\tshare\tactive\tidle\tmax\tcreated\tdestroyed\t\n")
	} else {
		fmt.Fprintf(tw, "  node\tslots\tborrows\tactive\tidle\tmax\twaits\ttimeouts\tcreated\tdestroyed\t\n")
	}
	for _, n := range c.Nodes {
		p := n.Pool
		if withOps {
			share := 0.0
			if total > 0 {
				share = 100 * float64(n.Ops) / float64(total)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.1f%%\t%d\t%d\t%d\t%s\t%s\t\n", n.Addr, fmtInt(int64(n.Slots)),
				fmtInt(n.Ops), fmtInt(int64(n.OpsPerSec)), share, p.Active, p.Idle, p.MaxTotal,
				fmtInt(p.Created), fmtInt(p.Destroyed))
		} else {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", n.Addr, fmtInt(int64(n.Slots)),
				fmtInt(p.Borrows), p.Active, p.Idle, p.MaxTotal, fmtInt(p.Waits), fmtInt(p.Timeouts),
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
}
