package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/redispool/redispool"
	"github.com/schollz/progressbar/v3"
)

var benchCommand = &command{
	name:    "bench",
	summary: "generate load through the pool and report throughput, latency and pool statistics",
	help: `Bench runs a command mix on -c concurrent clients, each borrowing a
connection from the pool for every operation, for -d or until -n
operations have run (5 seconds by default). On a terminal it shows live
progress with the rate and the pool's state. At the end it prints the
throughput, latency percentiles (borrow included) with a histogram, and
the pool's statistics. An interrupt ends the run early and still reports.

Keys are "<key-prefix>key:N" and "<key-prefix>counter:N"; the workload
writes them, so point --url at a server where that is harmless.

With a redis+cluster:// URL the clients borrow from the cluster, whose
connections bind to the node of their first key, so the keys spread over
every master; a transaction's or pipeline's keys share a hash tag
("counter:{N}"). The report adds each node's slots, operations and share,
and the MOVED, ASK and retry counts.

Exit status 1 if any operation failed.`,
	flags: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
		var lf loadFlags
		lf.register(fs, 50, "(default 5s unless -n is given)")
		return func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments: %s", strings.Join(args, " "))
			}
			return runBench(ctx, e, &lf)
		}
	},
}

func runBench(ctx context.Context, e *env, lf *loadFlags) error {
	d := lf.duration
	if d == 0 && lf.requests == 0 {
		d = 5 * time.Second
	}
	w, err := lf.workload(nil, 1)
	if err != nil {
		return err
	}
	s, stop, err := e.openLoad(ctx, lf, w)
	if err != nil {
		return err
	}
	defer stop()

	var before *redispool.ClusterStats
	if s.cluster != nil {
		cs := s.cluster.Stats()
		before = &cs
	}
	l := w.start(lf.clients, lf.requests)
	var tick func()
	var interval time.Duration
	var p *progress
	if e.tty && !e.json {
		p = newProgress(e.stdout, l, d, lf.requests)
		tick, interval = func() { p.update(s.Stats()) }, 100*time.Millisecond
	}
	interrupted := drive(ctx, l, d, interval, tick)
	if p != nil {
		p.finish()
	}
	st := s.Stats()

	r := benchReport{
		Server:          s.where,
		Clients:         lf.clients,
		Mix:             w.mix.String(),
		ValueSize:       lf.size,
		Interrupted:     interrupted,
		DurationSeconds: secs(l.elapsed),
		Ops:             l.ops.Load(),
		Errors:          l.errs.Load(),
		OpsPerSec:       perSec(rate(l.ops.Load(), l.elapsed)),
		ErrorMessages:   l.errorTexts(),
		Latency:         latencyJSONOf(&l.hist),
		Pool:            poolJSONOf(st),
	}
	if s.cluster != nil {
		r.Cluster = clusterJSONOf(s.cluster.Stats(), before, l.elapsed)
	}
	if e.json {
		if err := writeJSON(e.stdout, true, r); err != nil {
			return err
		}
	} else {
		writeBenchReport(e.stdout, &r, l, st)
	}
	if r.Errors > 0 {
		return fmt.Errorf("%s of %s operations failed", fmtInt(r.Errors), fmtInt(r.Errors+r.Ops))
	}
	return nil
}

func writeBenchReport(w io.Writer, r *benchReport, l *load, st redispool.Stats) {
	p := r.Pool
	maxTotal := fmt.Sprintf("pool max-total %d", p.MaxTotal)
	if r.Cluster != nil && len(r.Cluster.Nodes) > 0 {
		maxTotal = fmt.Sprintf("max-total %d per node", r.Cluster.Nodes[0].Pool.MaxTotal)
	}
	fmt.Fprintf(w, "%s: %d clients, %s, mix %s, %d-byte values\n\n",
		r.Server, r.Clients, maxTotal, r.Mix, r.ValueSize)
	fmt.Fprintf(w, "Throughput\n  %s ops in %s: %s ops/s, %s errors%s\n",
		fmtInt(r.Ops), fmtDur(l.elapsed), fmtInt(int64(r.OpsPerSec)), fmtInt(r.Errors), interruptedNote(r.Interrupted))
	if len(r.ErrorMessages) > 0 {
		msgs := make([]string, 0, len(r.ErrorMessages))
		for m := range r.ErrorMessages {
			msgs = append(msgs, m)
		}
		sort.Slice(msgs, func(i, j int) bool { return r.ErrorMessages[msgs[i]] > r.ErrorMessages[msgs[j]] })
		fmt.Fprintf(w, "\nErrors\n")
		for _, m := range msgs {
			fmt.Fprintf(w, "  %9s  %s\n", fmtInt(r.ErrorMessages[m]), m)
		}
	}
	fmt.Fprintf(w, "\nLatency (borrow + command + return)\n")
	l.hist.writeText(w)
	if r.Cluster != nil {
		fmt.Fprintf(w, "\nPools (all nodes)\n")
		writePoolStats(w, st)
		fmt.Fprintf(w, "\nCluster\n")
		writeClusterStats(w, r.Cluster, true)
		return
	}
	fmt.Fprintf(w, "\nPool\n")
	writePoolStats(w, st)
}

// benchReport is the result of bench, and its --json output.
type benchReport struct {
	Server          string           `json:"server"`
	Clients         int              `json:"clients"`
	Mix             string           `json:"mix"`
	ValueSize       int              `json:"value_size"`
	Interrupted     bool             `json:"interrupted,omitempty"`
	DurationSeconds float64          `json:"duration_seconds"`
	Ops             int64            `json:"ops"`
	Errors          int64            `json:"errors"`
	OpsPerSec       float64          `json:"ops_per_sec"`
	ErrorMessages   map[string]int64 `json:"error_messages,omitempty"`
	Latency         latencyJSON      `json:"latency"`
	Pool            poolJSON         `json:"pool"`              // for a cluster, the sum over its nodes
	Cluster         *clusterJSON     `json:"cluster,omitempty"` // for a redis+cluster:// URL
}

type latencyJSON struct {
	MinMs     float64      `json:"min_ms"`
	MeanMs    float64      `json:"mean_ms"`
	P50Ms     float64      `json:"p50_ms"`
	P90Ms     float64      `json:"p90_ms"`
	P99Ms     float64      `json:"p99_ms"`
	P999Ms    float64      `json:"p99_9_ms"`
	MaxMs     float64      `json:"max_ms"`
	Histogram []bucketJSON `json:"histogram"`
}

// bucketJSON is a row of the histogram: the operations that took at most
// LeMs and more than the previous row's; a null LeMs means no bound.
type bucketJSON struct {
	LeMs  *float64 `json:"le_ms"`
	Count int64    `json:"count"`
}

func latencyJSONOf(h *histogram) latencyJSON {
	l := latencyJSON{
		MinMs:     ms(h.min),
		MeanMs:    ms(h.mean()),
		P50Ms:     ms(h.quantile(0.5)),
		P90Ms:     ms(h.quantile(0.9)),
		P99Ms:     ms(h.quantile(0.99)),
		P999Ms:    ms(h.quantile(0.999)),
		MaxMs:     ms(h.max),
		Histogram: []bucketJSON{},
	}
	for _, r := range h.rows() {
		b := bucketJSON{Count: r.count}
		if r.le > 0 {
			le := ms(r.le)
			b.LeMs = &le
		}
		l.Histogram = append(l.Histogram, b)
	}
	return l
}

// progress is the live progress bar of bench on a terminal.
type progress struct {
	bar    *progressbar.ProgressBar
	l      *load
	byTime bool // the bar counts milliseconds, not operations
	// The rate shown is over the last second: samples holds the
	// operation counts of the last ticks.
	samples []sample
}

func newProgress(w io.Writer, l *load, d time.Duration, n int64) *progress {
	p := &progress{l: l, byTime: n == 0 || d > 0}
	max := n
	if p.byTime {
		max = d.Milliseconds()
	}
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionSetRenderBlankState(true),
	)
	return p
}

func (p *progress) update(st redispool.Stats) {
	now := time.Now()
	cur := sample{at: now, ops: p.l.ops.Load(), errs: p.l.errs.Load()}
	p.samples = append(p.samples, cur)
	for len(p.samples) > 1 && now.Sub(p.samples[0].at) > time.Second {
		p.samples = p.samples[1:]
	}
	first := p.samples[0]
	if len(p.samples) == 1 {
		first = sample{at: p.l.start}
	}
	r := rate(cur.ops-first.ops, cur.at.Sub(first.at))
	desc := fmt.Sprintf("%9s ops/s  active %3d  idle %3d  waits %s  timeouts %s  errors %s",
		fmtInt(int64(r)), st.Active, st.Idle, fmtInt(st.WaitCount), fmtInt(st.Timeouts), fmtInt(cur.errs))
	p.bar.Describe(desc)
	if p.byTime {
		p.bar.Set64(min(now.Sub(p.l.start).Milliseconds(), p.bar.GetMax64()))
	} else {
		p.bar.Set64(cur.ops + cur.errs)
	}
}

func (p *progress) finish() {
	p.bar.Finish()
	p.bar.Clear()
}
