package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redispool/redispool"
)

var statsCommand = &command{
	name:    "stats",
	summary: "run a light workload and show the pool's statistics, once or refreshing (--watch)",
	help: `Stats runs a workload through the pool (by default 8 clients with the bench
command mix) and prints the pool's statistics: after one second, or with
--watch as a table with one row per --interval, until -d passes or the
command is interrupted, followed by the totals. The rows show the pool's
connections at that moment, and rates and averages over the interval.
Use -c 0 to watch a pool with no workload (with --min-idle, say); the
workload writes keys, as bench does.

With a redis+cluster:// URL the pool figures are summed over the nodes,
and a table follows with each node's pool and slots and the cluster's
redirect counters.

With --json, --watch prints one JSON object per row.`,
	flags: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
		var lf loadFlags
		lf.register(fs, 8, "(default 1s; with --watch: until interrupted)")
		watch := fs.Bool("watch", false, "print a row of statistics every --interval while the workload runs")
		interval := fs.Duration("interval", time.Second, "time between rows with --watch")
		return func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments: %s", strings.Join(args, " "))
			}
			if *interval <= 0 {
				return usagef("--interval %v: want a positive duration", *interval)
			}
			if lf.pipelining == pipelineBoth {
				return usagef("--pipeline both: only bench compares the two; want on or off")
			}
			d := lf.duration
			if d == 0 && lf.requests == 0 && !*watch {
				d = time.Second
			}
			return runStats(ctx, e, &lf, d, *watch, *interval)
		}
	},
}

func runStats(ctx context.Context, e *env, lf *loadFlags, d time.Duration, watch bool, interval time.Duration) error {
	w, err := lf.workload(nil, 0)
	if err != nil {
		return err
	}
	s, stop, err := e.openLoad(ctx, lf, w)
	if err != nil {
		return err
	}
	defer stop()

	l := w.start(lf.clients, lf.requests)
	var tick func()
	if watch {
		rows := &statsRows{e: e, l: l, prev: sample{stats: s.Stats()}}
		tick = func() { rows.print(s.Stats()) }
		if !e.json {
			fmt.Fprintf(e.stdout, "%s, %d clients, mix %s, pool max-total %d\n", s.where, lf.clients, w.mix, s.Stats().MaxTotal)
		}
	}
	interrupted := drive(ctx, l, d, interval, tick)
	st := s.Stats()

	if e.json {
		if watch {
			return nil // the rows said it all
		}
		return writeJSON(e.stdout, true, statsReport{
			Server:          s.where,
			Clients:         lf.clients,
			Mix:             w.mix.String(),
			Interrupted:     interrupted,
			DurationSeconds: secs(l.elapsed),
			Ops:             l.ops.Load(),
			Errors:          l.errs.Load(),
			OpsPerSec:       perSec(rate(l.ops.Load(), l.elapsed)),
			Pool:            poolJSONOf(st),
			Cluster:         s.clusterJSON(),
		})
	}
	if watch {
		fmt.Fprintln(e.stdout)
	} else {
		fmt.Fprintf(e.stdout, "%s, %d clients, mix %s\n", s.where, lf.clients, w.mix)
	}
	fmt.Fprintf(e.stdout, "%s ops in %s (%s ops/s), %s errors%s\n\n", fmtInt(l.ops.Load()), fmtDur(l.elapsed),
		fmtInt(int64(rate(l.ops.Load(), l.elapsed))), fmtInt(l.errs.Load()), interruptedNote(interrupted))
	if c := s.clusterJSON(); c != nil {
		fmt.Fprintln(e.stdout, "Pools (all nodes)")
		writePoolStats(e.stdout, st, "")
		fmt.Fprintln(e.stdout, "\nCluster")
		writeClusterStats(e.stdout, c, false)
		return nil
	}
	fmt.Fprintln(e.stdout, "Pool")
	writePoolStats(e.stdout, st, s.master())
	return nil
}

// clusterJSON returns the cluster's per-node statistics, or nil for a
// single server.
func (s *server) clusterJSON() *clusterJSON {
	if s.cluster == nil {
		return nil
	}
	return clusterJSONOf(s.cluster.Stats(), nil, 0)
}

func interruptedNote(interrupted bool) string {
	if interrupted {
		return " (interrupted)"
	}
	return ""
}

// sample is a load's progress and the pool's statistics at one moment.
type sample struct {
	at         time.Time
	ops, errs  int64
	stats      redispool.Stats
	sinceStart time.Duration
}

// statsRows prints the rows of stats --watch: the pool's connections at
// the moment, and rates and averages over the interval since the last
// row, which redispool.Stats's counters let us compute.
type statsRows struct {
	e    *env
	l    *load
	prev sample
	n    int
}

// statsHeader fits the rows in 80 columns for all but extreme values.
// Connections created are in the totals only: closed shows the churn.
const statsHeader = "%7s %6s %5s %6s %9s %6s %7s %8s %8s %6s\n"

func (r *statsRows) print(st redispool.Stats) {
	now := time.Now()
	if r.prev.at.IsZero() {
		r.prev.at = r.l.start
	}
	cur := sample{at: now, ops: r.l.ops.Load(), errs: r.l.errs.Load(), stats: st, sinceStart: now.Sub(r.l.start)}
	dt := cur.at.Sub(r.prev.at)
	waits := st.WaitCount - r.prev.stats.WaitCount
	var waitAvg time.Duration
	if waits > 0 {
		waitAvg = (st.WaitDuration - r.prev.stats.WaitDuration) / time.Duration(waits)
	}
	opsRate := rate(cur.ops-r.prev.ops, dt)
	errRate := rate(cur.errs-r.prev.errs, dt)
	waitRate := rate(waits, dt)
	r.prev = cur

	if r.e.json {
		writeJSON(r.e.stdout, false, watchRow{
			ElapsedSeconds: secs(cur.sinceStart),
			OpsPerSec:      perSec(opsRate),
			ErrorsPerSec:   perSec(errRate),
			WaitsPerSec:    perSec(waitRate),
			WaitAvgMs:      ms(waitAvg),
			Pool:           poolJSONOf(st),
		})
		return
	}
	if r.n%20 == 0 {
		fmt.Fprintf(r.e.stdout, statsHeader, "elapsed", "active", "idle", "shared", "ops/s", "errs/s",
			"waits/s", "wait avg", "timeouts", "closed")
	}
	r.n++
	fmt.Fprintf(r.e.stdout, statsHeader, fmtElapsed(cur.sinceStart), fmtInt(int64(st.Active)), fmtInt(int64(st.Idle)),
		fmtInt(int64(st.Shared)), fmtInt(int64(opsRate)), fmtInt(int64(errRate)), fmtInt(int64(waitRate)),
		fmtDur(waitAvg), fmtInt(st.Timeouts), fmtInt(st.Destroyed))
}

// fmtElapsed formats the time since a load started: 1.0s, 12.5s, 2m03s.
func fmtElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// destroyReasons name the Destroyed* fields of redispool.Stats and
// Abandoned, as the Prometheus collector's reason label does.
var destroyReasons = []struct {
	name  string
	count func(*redispool.Stats) int64
}{
	{"broken", func(s *redispool.Stats) int64 { return s.DestroyedBroken }},
	{"unhealthy", func(s *redispool.Stats) int64 { return s.DestroyedUnhealthy }},
	{"dirty", func(s *redispool.Stats) int64 { return s.DestroyedDirty }},
	{"idle", func(s *redispool.Stats) int64 { return s.DestroyedIdle }},
	{"lifetime", func(s *redispool.Stats) int64 { return s.DestroyedLifetime }},
	{"surplus", func(s *redispool.Stats) int64 { return s.DestroyedSurplus }},
	{"closed", func(s *redispool.Stats) int64 { return s.DestroyedClosed }},
	{"failover", func(s *redispool.Stats) int64 { return s.DestroyedFailover }},
	{"abandoned", func(s *redispool.Stats) int64 { return s.Abandoned }},
}

// writePoolStats prints a Stats snapshot as an indented table; master,
// if not "", is the Sentinel master the pool connects to now.
func writePoolStats(w io.Writer, s redispool.Stats, master string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if master != "" {
		fmt.Fprintf(tw, "  master\t%s, %s master changes\n", master, fmtInt(s.MasterChanges))
	}
	// Shared connections are those Do's auto-pipelining holds; each is
	// one of MaxTotal, so a pool that counted only active and idle would
	// seem to have lost some.
	fmt.Fprintf(tw, "  connections\t%d active, %d idle, %d shared, max %d\n", s.Active, s.Idle, s.Shared, s.MaxTotal)
	fmt.Fprintf(tw, "  borrows\t%s\n", fmtInt(s.Borrows))
	if s.WaitCount > 0 {
		fmt.Fprintf(tw, "  waits\t%s, %s in all, %s on average\n", fmtInt(s.WaitCount),
			fmtDur(s.WaitDuration), fmtDur(s.WaitDuration/time.Duration(s.WaitCount)))
	} else {
		fmt.Fprintf(tw, "  waits\t0\n")
	}
	fmt.Fprintf(tw, "  timeouts\t%s\n", fmtInt(s.Timeouts))
	fmt.Fprintf(tw, "  created\t%s, %s dial errors\n", fmtInt(s.Created), fmtInt(s.DialErrors))
	var reasons []string
	for _, r := range destroyReasons {
		if n := r.count(&s); n > 0 {
			reasons = append(reasons, fmt.Sprintf("%s %s", r.name, fmtInt(n)))
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintf(tw, "  destroyed\t%s: %s\n", fmtInt(s.Destroyed), strings.Join(reasons, ", "))
	} else {
		fmt.Fprintf(tw, "  destroyed\t%s\n", fmtInt(s.Destroyed))
	}
	if s.PipelineBatches > 0 {
		fmt.Fprintf(tw, "  pipelined\t%s commands in %s batches, %.1f per batch\n", fmtInt(s.PipelinedCommands),
			fmtInt(s.PipelineBatches), float64(s.PipelinedCommands)/float64(s.PipelineBatches))
		var sizes []string
		for _, b := range batchBuckets(&s) {
			if b.Count > 0 {
				sizes = append(sizes, fmt.Sprintf("%s: %s", b.Size, fmtInt(b.Count)))
			}
		}
		fmt.Fprintf(tw, "  batch sizes\t%s\n", strings.Join(sizes, ", "))
	} else {
		fmt.Fprintf(tw, "  pipelined\t0\n")
	}
	tw.Flush()
}

// batchJSON is one bucket of Stats.PipelineBatchSizes: the number of
// writes on shared connections of Size commands ("1", "3-4", "257+").
type batchJSON struct {
	Size  string `json:"size"`
	Count int64  `json:"count"`
}

func batchBuckets(s *redispool.Stats) []batchJSON {
	out := make([]batchJSON, 0, len(s.PipelineBatchSizes))
	lo := 1
	for i, n := range s.PipelineBatchSizes {
		hi := redispool.PipelineBatchSizeBound(i)
		size := fmt.Sprintf("%d-%d", lo, hi)
		switch {
		case hi == 0:
			size = fmt.Sprintf("%d+", lo)
		case hi == lo:
			size = fmt.Sprint(hi)
		}
		out = append(out, batchJSON{size, n})
		lo = hi + 1
	}
	return out
}

// poolJSON is redispool.Stats for --json output.
type poolJSON struct {
	MaxTotal          int              `json:"max_total"`
	Active            int              `json:"active"`
	Idle              int              `json:"idle"`
	Shared            int              `json:"shared"`
	Borrows           int64            `json:"borrows"`
	Waits             int64            `json:"waits"`
	WaitSeconds       float64          `json:"wait_seconds"`
	Timeouts          int64            `json:"timeouts"`
	Created           int64            `json:"created"`
	DialErrors        int64            `json:"dial_errors"`
	Destroyed         int64            `json:"destroyed"`
	DestroyedByReason map[string]int64 `json:"destroyed_by_reason"`
	MasterChanges     int64            `json:"master_changes"`
	PipelinedCommands int64            `json:"pipelined_commands"`
	PipelineBatches   int64            `json:"pipeline_batches"`
	BatchSizes        []batchJSON      `json:"pipeline_batch_sizes"`
}

func poolJSONOf(s redispool.Stats) poolJSON {
	p := poolJSON{
		MaxTotal:          s.MaxTotal,
		Active:            s.Active,
		Idle:              s.Idle,
		Shared:            s.Shared,
		Borrows:           s.Borrows,
		Waits:             s.WaitCount,
		WaitSeconds:       secs(s.WaitDuration),
		Timeouts:          s.Timeouts,
		Created:           s.Created,
		DialErrors:        s.DialErrors,
		Destroyed:         s.Destroyed,
		DestroyedByReason: map[string]int64{},
		MasterChanges:     s.MasterChanges,
		PipelinedCommands: s.PipelinedCommands,
		PipelineBatches:   s.PipelineBatches,
		BatchSizes:        batchBuckets(&s),
	}
	for _, r := range destroyReasons {
		p.DestroyedByReason[r.name] = r.count(&s)
	}
	return p
}

// statsReport is the --json output of stats without --watch.
type statsReport struct {
	Server          string       `json:"server"`
	Clients         int          `json:"clients"`
	Mix             string       `json:"mix"`
	Interrupted     bool         `json:"interrupted,omitempty"`
	DurationSeconds float64      `json:"duration_seconds"`
	Ops             int64        `json:"ops"`
	Errors          int64        `json:"errors"`
	OpsPerSec       float64      `json:"ops_per_sec"`
	Pool            poolJSON     `json:"pool"` // for a cluster, the sum over its nodes
	Cluster         *clusterJSON `json:"cluster,omitempty"`
}

// watchRow is one --json row of stats --watch.
type watchRow struct {
	ElapsedSeconds float64  `json:"elapsed_seconds"`
	OpsPerSec      float64  `json:"ops_per_sec"`
	ErrorsPerSec   float64  `json:"errors_per_sec"`
	WaitsPerSec    float64  `json:"waits_per_sec"`
	WaitAvgMs      float64  `json:"wait_avg_ms"`
	Pool           poolJSON `json:"pool"`
}
