package main

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redispool/redispool/bench/internal/contender"
)

// sample is one timed run of one contender.
type sample struct {
	ops      int64
	errs     int64
	firstErr error
	elapsed  time.Duration
	p50, p99 time.Duration
	mallocs  uint64        // heap allocations during the run
	bytes    uint64        // bytes allocated during the run
	cpu      time.Duration // user+system CPU time of this process during the run
	// The server's CPU time and the commands it processed during the
	// run; zero when not measured (a cluster).
	srvCPU  time.Duration
	srvCmds int64
}

func (s sample) opsPerSec() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

func (s sample) perOp(v uint64) float64 {
	if s.ops == 0 {
		return 0
	}
	return float64(v) / float64(s.ops)
}

// runner runs one contender's workers for a cell (one workload at one
// concurrency). Its per-worker state is made once, so that a timed run
// allocates nothing but what the contender does.
type runner struct {
	timeout time.Duration // of each operation's context, if > 0
	ops     []func(context.Context) error
	hists   []*hist
	count   []int64
	errs    []int64

	mu       sync.Mutex
	firstErr error
}

func newRunner(cl contender.Client, w contender.Workload, conc int) *runner {
	r := &runner{
		ops:   make([]func(context.Context) error, conc),
		hists: make([]*hist, conc),
		count: make([]int64, conc),
		errs:  make([]int64, conc),
	}
	for i := range conc {
		r.ops[i] = cl.Op(w, i)
		r.hists[i] = new(hist)
	}
	return r
}

// run runs every worker for d and measures. The workers are started and
// parked before the baseline is read, so goroutine creation is not
// counted against the contender.
func (r *runner) run(ctx context.Context, d time.Duration) sample {
	conc := len(r.ops)
	r.firstErr = nil
	runtime.GC()

	var (
		stop        atomic.Bool
		ready, done sync.WaitGroup
		start       = make(chan struct{})
	)
	ready.Add(conc)
	done.Add(conc)
	for i := range conc {
		go func() {
			defer done.Done()
			op, h := r.ops[i], r.hists[i]
			h.reset()
			var n, errs int64
			ready.Done()
			<-start
			for !stop.Load() {
				t0 := time.Now()
				var err error
				if r.timeout > 0 {
					octx, cancel := context.WithTimeout(ctx, r.timeout)
					err = op(octx)
					cancel()
				} else {
					err = op(ctx)
				}
				lat := time.Since(t0)
				n++
				if err != nil {
					errs++
					r.noteErr(err)
					continue
				}
				h.record(lat)
			}
			r.count[i], r.errs[i] = n, errs
		}()
	}
	ready.Wait()

	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	t0 := time.Now()
	close(start)
	time.Sleep(d)
	stop.Store(true)
	done.Wait()
	elapsed := time.Since(t0)
	cpu1 := cpuTime()
	runtime.ReadMemStats(&m1)

	var all hist
	s := sample{elapsed: elapsed, firstErr: r.firstErr}
	for i := range conc {
		s.ops += r.count[i]
		s.errs += r.errs[i]
		all.merge(r.hists[i])
	}
	s.p50, s.p99 = all.quantile(0.50), all.quantile(0.99)
	s.mallocs = m1.Mallocs - m0.Mallocs
	s.bytes = m1.TotalAlloc - m0.TotalAlloc
	s.cpu = cpu1 - cpu0
	return s
}

func (r *runner) noteErr(err error) {
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// result is what the report shows for one contender in one cell: the
// median of each measure over the rounds.
type result struct {
	name     string
	rounds   []sample
	opsPerS  float64
	p50, p99 time.Duration
	allocs   float64 // per op
	bytes    float64 // per op
	cpuPerOp time.Duration
	// srvCPUPerCmd is the server's CPU time per command it processed,
	// or 0 when not measured.
	srvCPUPerCmd time.Duration
	errs         int64
	firstErr     error
}

func summarize(name string, rounds []sample) result {
	r := result{name: name, rounds: rounds}
	var ops, p50, p99, allocs, bytes, cpu, srv []float64
	for _, s := range rounds {
		ops = append(ops, s.opsPerSec())
		p50 = append(p50, float64(s.p50))
		p99 = append(p99, float64(s.p99))
		allocs = append(allocs, s.perOp(s.mallocs))
		bytes = append(bytes, s.perOp(s.bytes))
		if s.ops > 0 {
			cpu = append(cpu, float64(s.cpu)/float64(s.ops))
		}
		if s.srvCmds > 0 {
			srv = append(srv, float64(s.srvCPU)/float64(s.srvCmds))
		}
		r.errs += s.errs
		if r.firstErr == nil {
			r.firstErr = s.firstErr
		}
	}
	r.opsPerS = median(ops)
	r.p50 = time.Duration(median(p50))
	r.p99 = time.Duration(median(p99))
	r.allocs = median(allocs)
	r.bytes = median(bytes)
	r.cpuPerOp = time.Duration(median(cpu))
	r.srvCPUPerCmd = time.Duration(median(srv))
	return r
}

// paired compares a with b round by round. Rounds are interleaved, so
// round i of each ran within moments of the other, under the same load;
// the median of the per-round ratios of f is therefore steadier on a
// noisy machine than the ratio of the medians. won counts the rounds in
// which a's f was at least b's.
func paired(a, b result, f func(sample) float64) (ratio float64, won, of int) {
	var ratios []float64
	for i := range min(len(a.rounds), len(b.rounds)) {
		fa, fb := f(a.rounds[i]), f(b.rounds[i])
		if fb == 0 {
			continue
		}
		ratios = append(ratios, fa/fb)
		if fa >= fb {
			won++
		}
		of++
	}
	return median(ratios), won, of
}

func opsPerSec(s sample) float64 { return s.opsPerSec() }
func p99Of(s sample) float64     { return float64(s.p99) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cell is one workload at one concurrency, measured for several
// contenders.
type cell struct {
	workload contender.Workload
	conc     int
	results  []result // in contender order
}

func (c *cell) get(name string) (result, bool) {
	for _, r := range c.results {
		if r.name == name {
			return r, true
		}
	}
	return result{}, false
}

// measureCell sets every contender up for one workload and concurrency,
// warms each, then runs them in interleaved rounds.
func measureCell(ctx context.Context, addr string, cs []contender.Contender, w contender.Workload, conc int, o options, progress func(string)) (*cell, error) {
	clients := make([]contender.Client, len(cs))
	runners := make([]*runner, len(cs))
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	for i, c := range cs {
		cl, err := c.New(ctx, addr, conc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		clients[i] = cl
		runners[i] = newRunner(cl, w, conc)
		runners[i].timeout = o.opTimeout
		if s := runners[i].run(ctx, o.warmup); s.errs > 0 {
			return nil, fmt.Errorf("%s %s conc %d: warm-up: %d errors, first: %w", c.Name, w, conc, s.errs, s.firstErr)
		}
	}
	// Each round runs every contender once; the starting contender
	// rotates (A B C, B C A, C A B, ...) so that none always runs right
	// after the same neighbour.
	// A single server's own CPU per command; a cluster's is spread
	// over its nodes and not measured.
	var meter *serverMeter
	if !strings.Contains(addr, ",") {
		var err error
		if meter, err = newServerMeter(ctx, addr); err != nil {
			return nil, err
		}
		defer meter.close()
	}
	samples := make([][]sample, len(cs))
	for round := range o.rounds {
		for k := range cs {
			i := (round + k) % len(cs)
			u0, ok0 := meter.read()
			s := runners[i].run(ctx, o.duration)
			if u1, ok1 := meter.read(); ok0 && ok1 {
				s.srvCPU, s.srvCmds = u1.cpu-u0.cpu, u1.commands-u0.commands
			}
			samples[i] = append(samples[i], s)
		}
		progress(fmt.Sprintf("%s conc %d: round %d/%d", w, conc, round+1, o.rounds))
	}
	c := &cell{workload: w, conc: conc}
	for i, ct := range cs {
		c.results = append(c.results, summarize(ct.Name, samples[i]))
	}
	return c, nil
}
