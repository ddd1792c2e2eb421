package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/redispool/redispool"
)

var benchCommand = &command{
	name:    "bench",
	summary: "generate load through the pool and report throughput, latency and pool statistics",
	help: `Bench runs a command mix on -c concurrent clients for -d or until -n
operations have run (5 seconds by default). Single commands (get, set,
incr, ping) go through Do, which auto-pipelines them (--pipeline off
makes each borrow a connection of its own); a transaction or a pipeline
borrows a connection for the operation. --pipeline both runs the load
twice, pipelining off then on, each on a pool of its own, and compares
the two. On a terminal it shows live
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
	if lf.pipelining == pipelineBoth {
		return runBenchBoth(ctx, e, lf, d)
	}
	r, err := benchOnce(ctx, e, lf, d, true)
	if err != nil {
		return err
	}
	if e.json {
		if err := writeJSON(e.stdout, true, r); err != nil {
			return err
		}
	}
	return r.failed()
}

// failed is bench's error when some operations failed.
func (r *benchReport) failed() error {
	if r.Errors > 0 {
		return fmt.Errorf("%s of %s operations failed", fmtInt(r.Errors), fmtInt(r.Errors+r.Ops))
	}
	return nil
}

// benchOnce runs the load once on a pool of its own and returns the
// report, which it prints unless --json, or unless print is false.
func benchOnce(ctx context.Context, e *env, lf *loadFlags, d time.Duration, print bool) (*benchReport, error) {
	w, err := lf.workload(nil, 1)
	if err != nil {
		return nil, err
	}
	s, stop, err := e.openLoad(ctx, lf, w)
	if err != nil {
		return nil, err
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
		p = newProgress(e.stdout, e.width, l, d, lf.requests)
		tick, interval = func() { p.update(s.Stats()) }, 100*time.Millisecond
	}
	interrupted := drive(ctx, l, d, interval, tick)
	if p != nil {
		p.finish()
	}
	st := s.Stats()

	r := &benchReport{
		Server:          s.where,
		Clients:         lf.clients,
		Mix:             w.mix.String(),
		ValueSize:       lf.size,
		Pipelining:      pipeliningOf(s),
		Interrupted:     interrupted,
		DurationSeconds: secs(l.elapsed),
		Ops:             l.ops.Load(),
		Errors:          l.errs.Load(),
		OpsPerSec:       perSec(rate(l.ops.Load(), l.elapsed)),
		ErrorMessages:   l.errorTexts(),
		Latency:         latencyJSONOf(&l.hist),
		Pool:            poolJSONOf(st),
		Master:          s.master(),
	}
	if st := l.longest; st.length >= stallReported {
		r.LongestStall = &stallJSON{FromSeconds: secs(st.from), Seconds: secs(st.length)}
	}
	if first := l.firstErr.Load(); first > 0 {
		r.ErrorWindow = &errorWindow{
			FirstSeconds: secs(time.Duration(first)),
			LastSeconds:  secs(time.Duration(l.lastErr.Load())),
		}
	}
	if l.failHist.n > 0 {
		f := latencyJSONOf(&l.failHist)
		r.FailedLatency = &f
	}
	if s.cluster != nil {
		r.Cluster = clusterJSONOf(s.cluster.Stats(), before, l.elapsed)
	}
	if print && !e.json {
		writeBenchReport(e.stdout, r, l, st)
	}
	return r, nil
}

// pipeliningOf says whether the pool's Do auto-pipelines: "on" or
// "off".
func pipeliningOf(s *server) string {
	if s.pipelineConns < 0 {
		return "off"
	}
	return "on"
}

// runBenchBoth runs the load with auto-pipelining off, then on, each on
// a pool of its own for the same -d or -n, and compares them.
func runBenchBoth(ctx context.Context, e *env, lf *loadFlags, d time.Duration) error {
	var runs [2]*benchReport
	for i, mode := range []pipelineMode{pipelineOff, pipelineOn} {
		one := *lf
		one.pipelining = mode
		if !e.json {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintf(e.stdout, "=== --pipeline %s\n\n", mode)
		}
		r, err := benchOnce(ctx, e, &one, d, true)
		if err != nil {
			return err
		}
		runs[i] = r
		if r.Interrupted {
			break
		}
	}
	off, on := runs[0], runs[1]
	if on == nil {
		if e.json {
			writeJSON(e.stdout, true, benchComparison{Off: off})
		}
		return off.failed()
	}
	cmp := benchComparison{Off: off, On: on}
	if off.OpsPerSec > 0 {
		cmp.Speedup = on.OpsPerSec / off.OpsPerSec
	}
	if e.json {
		if err := writeJSON(e.stdout, true, cmp); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(e.stdout, "\n=== Auto-pipelining off and on (%d clients, mix %s)\n\n", lf.clients, off.Mix)
		fmt.Fprintf(tw, "  pipeline\tops/s\tp50\tp99\tp99.9\terrors\tborrows\tpipelined\tmean batch\t\n")
		for _, r := range []*benchReport{off, on} {
			batch := "—"
			if r.Pool.PipelineBatches > 0 {
				batch = fmt.Sprintf("%.1f", float64(r.Pool.PipelinedCommands)/float64(r.Pool.PipelineBatches))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Pipelining, fmtInt(int64(r.OpsPerSec)),
				fmtMs(r.Latency.P50Ms), fmtMs(r.Latency.P99Ms), fmtMs(r.Latency.P999Ms), fmtInt(r.Errors),
				fmtInt(r.Pool.Borrows), fmtInt(r.Pool.PipelinedCommands), batch)
		}
		tw.Flush()
		if cmp.Speedup > 0 {
			fmt.Fprintf(e.stdout, "  on ÷ off: %.2f× the throughput\n", cmp.Speedup)
		}
	}
	if err := off.failed(); err != nil {
		return err
	}
	return on.failed()
}

// fmtMs formats a latency given in milliseconds.
func fmtMs(v float64) string { return fmtDur(time.Duration(v * float64(time.Millisecond))) }

// benchComparison is the --json output of bench --pipeline both.
type benchComparison struct {
	Off     *benchReport `json:"off"`
	On      *benchReport `json:"on,omitempty"` // nil if interrupted before it ran
	Speedup float64      `json:"speedup,omitempty"`
}

func writeBenchReport(w io.Writer, r *benchReport, l *load, st redispool.Stats) {
	p := r.Pool
	maxTotal := fmt.Sprintf("pool max-total %d", p.MaxTotal)
	if r.Cluster != nil && len(r.Cluster.Nodes) > 0 {
		maxTotal = fmt.Sprintf("max-total %d per node", r.Cluster.Nodes[0].Pool.MaxTotal)
	}
	fmt.Fprintf(w, "%s: %d clients, %s, mix %s, %d-byte values, auto-pipelining %s\n\n",
		r.Server, r.Clients, maxTotal, r.Mix, r.ValueSize, r.Pipelining)
	fmt.Fprintf(w, "Throughput\n  %s ops in %s: %s ops/s, %s errors%s\n",
		fmtInt(r.Ops), fmtDur(l.elapsed), fmtInt(int64(r.OpsPerSec)), fmtInt(r.Errors), interruptedNote(r.Interrupted))
	if st := r.LongestStall; st != nil {
		// During a failover: how long the clients went without a reply.
		fmt.Fprintf(w, "  longest stall: a client completed nothing for %s, from %.3fs after the start\n",
			fmtDur(time.Duration(st.Seconds*float64(time.Second))), st.FromSeconds)
	}
	if ew := r.ErrorWindow; ew != nil {
		// During a failover: how long the errors lasted.
		fmt.Fprintf(w, "  errors from %.3fs to %.3fs after the start: a window of %s\n",
			ew.FirstSeconds, ew.LastSeconds, fmtDur(time.Duration((ew.LastSeconds-ew.FirstSeconds)*float64(time.Second))))
	}
	if len(r.ErrorMessages) > 0 {
		msgs := make([]string, 0, len(r.ErrorMessages))
		for m := range r.ErrorMessages {
			msgs = append(msgs, m)
		}
		sort.Slice(msgs, func(i, j int) bool { return r.ErrorMessages[msgs[i]] > r.ErrorMessages[msgs[j]] })
		fmt.Fprintf(w, "\nErrors\n")
		grouped := int64(0)
		for _, m := range msgs {
			fmt.Fprintf(w, "  %9s  %s\n", fmtInt(r.ErrorMessages[m]), m)
			grouped += r.ErrorMessages[m]
		}
		if other := r.Errors - grouped; other > 0 {
			fmt.Fprintf(w, "  %9s  other errors (only the first %d kinds are told apart)\n", fmtInt(other), maxErrTexts)
		}
	}
	fmt.Fprintf(w, "\nLatency of successful operations (Do, or borrow + commands + return)\n")
	l.hist.writeText(w)
	if f := &l.failHist; f.n > 0 {
		fmt.Fprintf(w, "\n  The %s failed operations are not counted above. They took:\n  p50 %s, p99 %s, max %s\n",
			fmtInt(f.n), fmtDur(f.quantile(0.5)), fmtDur(f.quantile(0.99)), fmtDur(f.max))
	}
	if r.Cluster != nil {
		fmt.Fprintf(w, "\nPools (all nodes)\n")
		writePoolStats(w, st, "")
		fmt.Fprintf(w, "\nCluster\n")
		writeClusterStats(w, r.Cluster, true)
		return
	}
	fmt.Fprintf(w, "\nPool\n")
	writePoolStats(w, st, r.Master)
}

// errorWindow is when the errors of a run happened, in seconds since its
// start: with a Sentinel URL, a failover's window.
type errorWindow struct {
	FirstSeconds float64 `json:"first_seconds"`
	LastSeconds  float64 `json:"last_seconds"`
}

// stallJSON is the longest time a client went without completing an
// operation, when it is at least stallReported.
type stallJSON struct {
	FromSeconds float64 `json:"from_seconds"`
	Seconds     float64 `json:"seconds"`
}

// stallReported is the shortest stall bench reports: shorter ones are
// scheduling noise, longer ones an outage or a failover.
const stallReported = 100 * time.Millisecond

// benchReport is the result of bench, and its --json output.
type benchReport struct {
	Server          string           `json:"server"`
	Clients         int              `json:"clients"`
	Mix             string           `json:"mix"`
	ValueSize       int              `json:"value_size"`
	Pipelining      string           `json:"pipelining"` // "on" or "off": whether Do auto-pipelines
	Interrupted     bool             `json:"interrupted,omitempty"`
	DurationSeconds float64          `json:"duration_seconds"`
	Ops             int64            `json:"ops"`
	Errors          int64            `json:"errors"`
	ErrorWindow     *errorWindow     `json:"error_window,omitempty"`
	LongestStall    *stallJSON       `json:"longest_stall,omitempty"`
	Master          string           `json:"master,omitempty"`
	OpsPerSec       float64          `json:"ops_per_sec"`
	ErrorMessages   map[string]int64 `json:"error_messages,omitempty"`
	// Latency is of the successful operations; FailedLatency, of the
	// failed ones.
	Latency       latencyJSON  `json:"latency"`
	FailedLatency *latencyJSON `json:"failed_latency,omitempty"`
	Pool          poolJSON     `json:"pool"`              // for a cluster, the sum over its nodes
	Cluster       *clusterJSON `json:"cluster,omitempty"` // for a redis+cluster:// URL
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

// progress is the live progress line of bench on a terminal. It is
// redrawn in place, so it must never be wider than the terminal: a line
// that wraps leaves its first row behind at every redraw and scrolls the
// screen.
type progress struct {
	w     io.Writer
	width func() int // the terminal's width in columns
	l     *load
	d     time.Duration // the run's length, or 0 when -n ends it
	n     int64         // -n, when d is 0
	// The rate shown is over the last second: samples holds the
	// operation counts of the last ticks.
	samples []sample
}

func newProgress(w io.Writer, width func() int, l *load, d time.Duration, n int64) *progress {
	p := &progress{w: w, width: width, l: l, d: d, n: n}
	if d == 0 && n == 0 {
		p.d = 5 * time.Second
	}
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
	elapsed := now.Sub(p.l.start)
	var done float64
	if p.d > 0 {
		done = float64(elapsed) / float64(p.d)
	} else {
		done = float64(cur.ops+cur.errs) / float64(p.n)
	}
	line := progressLine(p.width(), min(done, 1), elapsed, rate(cur.ops-first.ops, cur.at.Sub(first.at)), st, cur.errs)
	// Carriage return, the line, then erase what a longer line left.
	io.WriteString(p.w, "\r"+line+"\x1b[K")
}

func (p *progress) finish() {
	io.WriteString(p.w, "\r\x1b[K")
}

// progressLine formats the progress line for a terminal width columns
// wide. It stays a column short of the width, since writing the last
// column makes some terminals wrap. The figures that do not fit are left
// out, least important first; the bar takes the space that remains.
func progressLine(width int, done float64, elapsed time.Duration, opsPerSec float64, st redispool.Stats, errs int64) string {
	const minBar, maxBar = 10, 30
	avail := width - 1
	head := fmt.Sprintf("%3d%% |", int(done*100))
	tail := "| " + fmtElapsed(elapsed)
	fixed := len(head) + len(tail)

	// By importance; printed in the order of show.
	figures := []struct {
		text string
		show int
	}{
		{fmt.Sprintf("  %s ops/s", fmtInt(int64(opsPerSec))), 0},
		{"  errors " + fmtInt(errs), 5},
		{fmt.Sprintf("  active %d", st.Active), 1},
		{fmt.Sprintf("  idle %d", st.Idle), 2},
		{"  waits " + fmtInt(st.WaitCount), 3},
		{"  timeouts " + fmtInt(st.Timeouts), 4},
	}
	var shown [6]string
	used := fixed + minBar
	for _, f := range figures {
		if used+len(f.text) <= avail {
			shown[f.show] = f.text
			used += len(f.text)
		}
	}
	barWidth := min(max(avail-used+minBar, minBar), maxBar)
	b := bar(int64(done*1000), 1000, barWidth)
	line := head + b + strings.Repeat(" ", barWidth-utf8.RuneCountInString(b)) + tail + strings.Join(shown[:], "")
	if utf8.RuneCountInString(line) > avail {
		line = string([]rune(line)[:max(avail, 0)])
	}
	return line
}
