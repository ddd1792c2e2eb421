package main

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redispool/redispool/bench/internal/contender"
	"github.com/redispool/redispool/bench/internal/micro"
)

// allocsSlack is the allowance in the allocs/op comparison for
// allocations that are neither contender's: the runtime's and the
// harness's, spread over the run's operations.
const allocsSlack = 0.05

// check is one comparison behind a target.
type check struct {
	what   string // the cell, e.g. "GET, conc 64"
	detail string // the numbers
	pass   bool
}

// target is one of the performance targets (issues 4 and 9) and its
// checks.
type target struct {
	name   string
	checks []check
	// noisy targets compare rates, which a -quick run is too short to
	// resolve to a few percent; allocation counts are not noisy.
	noisy bool
}

// informational reports whether t is shown without a verdict: a noisy
// target in a -quick run.
func (t target) informational(quick bool) bool { return quick && t.noisy }

// result is t's Result column.
func (t target) result(quick bool) string {
	if t.informational(quick) {
		if t.pass() {
			return "met (informational)"
		}
		return "not met (informational)"
	}
	return "**" + passFail(t.pass()) + "**"
}

func (t target) pass() bool {
	for _, c := range t.checks {
		if !c.pass {
			return false
		}
	}
	return len(t.checks) > 0
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// microVsRedigo is issue 9's target for a borrow and a return alone:
// redispool's rate over redigo.Pool's, at these concurrencies.
const microVsRedigo = 1.25

var microVsRedigoConcs = map[int]bool{1: true, 16: true, 64: true}

// targets evaluates the targets of issues 4 and 9 on what was measured.
func (r *report) targets() []target {
	rp, base, gr := contender.Redispool.Name, contender.Baseline.Name, contender.GoRedis.Name
	var (
		thr   = target{name: "Throughput ≥ 1.00× redigo.Pool at every concurrency, GET and MULTI (redispool defaults)", noisy: true}
		vsGR  = target{name: "Throughput ≥ 1.15× go-redis at concurrency 64", noisy: true}
		p99   = target{name: "p99 latency ≤ redigo.Pool's", noisy: true}
		alloc = target{name: fmt.Sprintf("allocs/op ≤ redigo.Pool's (+%.2f slack for runtime and harness)", allocsSlack)}
		adapt = target{name: "Adapter overhead ≤ 10% over bare go-commons-pool (micro-benchmark, no peek)", noisy: true}
		vsRG  = target{name: fmt.Sprintf("Borrow and return alone ≥ %.2f× redigo.Pool's rate at concurrency 1, 16 and 64 (micro-benchmark, no peek)", microVsRedigo), noisy: true}
		live  = target{name: "Idle-connection liveness check costs ≤ 2% end to end (GET)", noisy: true}
		// Issue 16: auto-pipelined Pool.Do against rueidis.
		vsRU   = target{name: "Pool.Do ≥ 1.00× rueidis at 16, 64 and 256 goroutines, GET and SET", noisy: true}
		doLat  = target{name: "Pool.Do ≥ 0.95× redigo.Pool at 1 goroutine, GET and SET", noisy: true}
		doAllc = target{name: fmt.Sprintf("Pool.Do allocs/op ≤ 2 at 16 goroutines and more, GET and SET (+%.2f slack)", allocsSlack)}
	)
	do, ru := contender.RedispoolDo.Name, contender.Rueidis.Name
	for _, c := range r.cells {
		what := fmt.Sprintf("%s, conc %d", c.workload, c.conc)
		a, okA := c.get(rp)
		b, okB := c.get(base)
		if okA && okB {
			if c.workload == contender.Get || c.workload == contender.Multi {
				ratio, won, of := paired(a, b, opsPerSec)
				thr.checks = append(thr.checks, check{what, fmt.Sprintf("%.2f× (medians %s vs %s ops/s; won %d/%d rounds)", ratio, fmtOps(a.opsPerS), fmtOps(b.opsPerS), won, of), ratio >= 1.00})
			}
			ratio, won, of := paired(a, b, p99Of)
			p99.checks = append(p99.checks, check{what, fmt.Sprintf("%.2f× (medians %s vs %s; lower in %d/%d rounds)", ratio, fmtDur(a.p99), fmtDur(b.p99), of-won+countEqual(a, b, p99Of), of), ratio <= 1.00})
			alloc.checks = append(alloc.checks, check{what, fmt.Sprintf("%.2f vs %.2f", a.allocs, b.allocs), a.allocs <= b.allocs+allocsSlack})
		}
		if d, okD := c.get(do); okD && (c.workload == contender.Get || c.workload == contender.Set) {
			if u, okU := c.get(ru); okU && c.conc > 1 {
				ratio, won, of := paired(d, u, opsPerSec)
				vsRU.checks = append(vsRU.checks, check{what, fmt.Sprintf("%.2f× (medians %s vs %s ops/s; won %d/%d rounds)", ratio, fmtOps(d.opsPerS), fmtOps(u.opsPerS), won, of), ratio >= 1.00})
			}
			if okB && c.conc == 1 {
				ratio, won, of := paired(d, b, opsPerSec)
				doLat.checks = append(doLat.checks, check{what, fmt.Sprintf("%.2f× (medians %s vs %s ops/s; won %d/%d rounds)", ratio, fmtOps(d.opsPerS), fmtOps(b.opsPerS), won, of), ratio >= 0.95})
			}
			if c.conc > 1 {
				doAllc.checks = append(doAllc.checks, check{what, fmt.Sprintf("%.2f", d.allocs), d.allocs <= 2+allocsSlack})
			}
		}
		g, okG := c.get(gr)
		if okA && okG && c.conc == 64 {
			ratio, won, of := paired(a, g, opsPerSec)
			vsGR.checks = append(vsGR.checks, check{what, fmt.Sprintf("%.2f× (medians %s vs %s ops/s; won %d/%d rounds)", ratio, fmtOps(a.opsPerS), fmtOps(g.opsPerS), won, of), ratio >= 1.15})
		}
	}
	for _, row := range r.micro {
		var rpm, cp, rg microResult
		for _, m := range row {
			switch m.name {
			case micro.Redispool.Name:
				rpm = m
			case micro.Baseline.Name:
				cp = m
			case micro.Redigo.Name:
				rg = m
			}
		}
		if len(rpm.nsPerOp) == 0 {
			continue
		}
		if len(cp.nsPerOp) > 0 {
			ratio, won, of := pairedMicro(cp, rpm)
			over := 1/ratio - 1
			adapt.checks = append(adapt.checks, check{fmt.Sprintf("conc %d", rpm.conc), fmt.Sprintf("%+.0f%% (medians %.0f vs %.0f ns/op; redispool at most 10%% slower in %d/%d rounds)", 100*over, rpm.ns(), cp.ns(), won, of), over <= 0.10})
		}
		if len(rg.nsPerOp) > 0 && microVsRedigoConcs[rpm.conc] {
			ratio, won, of := speedup(rg, rpm, microVsRedigo)
			vsRG.checks = append(vsRG.checks, check{fmt.Sprintf("conc %d", rpm.conc), fmt.Sprintf("%.2f× (medians %.0f vs %.0f ns/op; at least %.2f× in %d/%d rounds)", ratio, rpm.ns(), rg.ns(), microVsRedigo, won, of), ratio >= microVsRedigo})
		}
	}
	for _, c := range r.liveness {
		on, okOn := c.get(contender.Redispool.Name)
		off, okOff := c.get(contender.RedispoolNoCheck.Name)
		if !okOn || !okOff {
			continue
		}
		ratio, won, of := paired(on, off, opsPerSec)
		cost := 1 - ratio
		live.checks = append(live.checks, check{fmt.Sprintf("conc %d", c.conc), fmt.Sprintf("%+.1f%% (medians %s on vs %s off ops/s; on won %d/%d rounds; client CPU %s vs %s per op)", 100*cost, fmtOps(on.opsPerS), fmtOps(off.opsPerS), won, of, fmtDur(on.cpuPerOp), fmtDur(off.cpuPerOp)), cost <= 0.02})
	}
	var out []target
	for _, t := range []target{thr, vsGR, p99, alloc, adapt, vsRG, live, vsRU, doLat, doAllc} {
		if len(t.checks) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func (r *report) write(b *strings.Builder) {
	m, o := r.meta, r.opts
	fmt.Fprintf(b, "# redispool benchmarks\n\n")
	fmt.Fprintf(b, "Generated by `bench/cmd/poolbench` (`make bench`; `make bench-quick` for the short CI run).\n\n")
	fmt.Fprintf(b, "| | |\n|---|---|\n")
	fmt.Fprintf(b, "| Date | %s |\n", m.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "| Machine | %s, %d cores, GOMAXPROCS %d, %s, Linux %s |\n", m.cpu, m.cores, m.procs, m.osArch, m.kernel)
	fmt.Fprintf(b, "| redispool | commit %s |\n", m.commit)
	fmt.Fprintf(b, "| Go | %s |\n", m.goVersion)
	fmt.Fprintf(b, "| Redis | %s, on 127.0.0.1, `--save \"\" --appendonly no` |\n", m.redis)
	fmt.Fprintf(b, "| Load average | %s at start, %s at end |\n", m.loadStart, m.loadEnd)
	fmt.Fprintf(b, "| Command | `poolbench %s` |\n", m.args)
	fmt.Fprintf(b, "| Method | per cell: each contender warmed up %v, then %d interleaved rounds (A B C, B C A, ...) of %v per contender; medians over rounds |\n", o.warmup, o.rounds, o.duration)
	fmt.Fprintf(b, "| Took | %v |\n\n", m.took.Round(time.Second))

	if targets := r.targets(); len(targets) > 0 {
		fmt.Fprintf(b, "## Targets\n\n")
		fmt.Fprintf(b, "| Target | Result | Checks passed | Worst case |\n|---|---|---|---|\n")
		for _, t := range targets {
			passed := 0
			worst := ""
			for _, c := range t.checks {
				if c.pass {
					passed++
				} else if worst == "" {
					worst = c.what + ": " + c.detail
				}
			}
			if worst == "" {
				worst = "—"
			}
			fmt.Fprintf(b, "| %s | %s | %d/%d | %s |\n", t.name, t.result(o.quick), passed, len(t.checks), worst)
		}
		if o.quick {
			fmt.Fprintf(b, "\nThis is a -quick run: its rounds are too short to resolve ratios to a few percent, so the targets that compare rates are informational here, not verdicts. `make bench` checks them.\n")
		}
		fmt.Fprintf(b, "\n<details><summary>Every check</summary>\n\n| Target | Cell | Numbers | Result |\n|---|---|---|---|\n")
		for i, t := range targets {
			for _, c := range t.checks {
				result := passFail(c.pass)
				if t.informational(o.quick) {
					result = map[bool]string{true: "met", false: "not met"}[c.pass]
				}
				fmt.Fprintf(b, "| %d | %s | %s | %s |\n", i+1, c.what, c.detail, result)
			}
		}
		fmt.Fprintf(b, "\n</details>\n\n")
		fmt.Fprintf(b, "Ratios are medians of per-round ratios: the contenders of a round ran within a second of each other, so each round compares them under the same machine load. \"won k/n rounds\" counts the rounds in which redispool did at least as well; on a shared machine a ratio within a few percent of the target with k near n/2 is noise, not a result.")
		if lo, hi, ok := r.noiseFloor(); ok {
			fmt.Fprintf(b, " For scale: redigo+TOB differs from redigo only by one clock read per borrow, and its throughput ratio to redigo ranged from %.2f to %.2f across the cells of this run.", lo, hi)
		}
		fmt.Fprintf(b, "\n\n")
	}

	if len(r.cells) > 0 {
		fmt.Fprintf(b, "## End to end\n\n")
		fmt.Fprintf(b, "One op is one borrow, the workload's commands, and the return, whatever the number of commands. Latency is per op, including the wait for a connection. ops/s, p50, p99, allocs/op, B/op and CPU/op are medians over the rounds; allocs/op and B/op are `runtime.MemStats` deltas over a run divided by its ops; CPU/op is the benchmark process's user+system time per op (the server's is not included); srv CPU/cmd is redis-server's own user+system time (`INFO cpu`) divided by the commands it processed (`total_commands_processed`) during the run, what batching saves the server. × redigo is the median over rounds of the contender's ops/s divided by redigo.Pool's in the same round, × rueidis the same against rueidis.\n\n")
		fmt.Fprintf(b, "Contenders, every pool holding at most %d connections, all with dial/read/write timeouts of 5s/3s/3s:\n\n", contender.PoolSize)
		for _, c := range r.opts.contenders {
			fmt.Fprintf(b, "- **%s**: %s\n", c.Name, c.Describe)
		}
		fmt.Fprintln(b)
		for _, w := range r.opts.workloads {
			fmt.Fprintf(b, "### %s: %s\n\n", w, w.Describe())
			fmt.Fprintf(b, "| Conc | Contender | ops/s | × redigo | × rueidis | p50 | p99 | allocs/op | B/op | CPU/op | srv CPU/cmd | errors |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, c := range r.cells {
				if c.workload != w {
					continue
				}
				base, hasBase := c.get(contender.Baseline.Name)
				ru, hasRU := c.get(contender.Rueidis.Name)
				for _, res := range c.results {
					ratio, ratioRU := "—", "—"
					if hasBase {
						r, _, _ := paired(res, base, opsPerSec)
						ratio = fmt.Sprintf("%.2f", r)
					}
					if hasRU {
						r, _, _ := paired(res, ru, opsPerSec)
						ratioRU = fmt.Sprintf("%.2f", r)
					}
					name := res.name
					if name == contender.Redispool.Name || name == contender.RedispoolDo.Name {
						name = "**" + name + "**"
					}
					srv := "—"
					if res.srvCPUPerCmd > 0 {
						srv = fmtDur(res.srvCPUPerCmd)
					}
					fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %.1f | %.0f | %s | %s | %s |\n",
						c.conc, name, fmtOps(res.opsPerS), ratio, ratioRU, fmtDur(res.p50), fmtDur(res.p99), res.allocs, res.bytes, fmtDur(res.cpuPerOp), srv, fmtErrs(res))
				}
			}
			fmt.Fprintln(b)
		}
	}

	if len(r.liveness) > 0 {
		fmt.Fprintf(b, "## Liveness check on and off\n\n")
		fmt.Fprintf(b, "redispool has no switch for the socket peek, the no-round-trip check that the server has not closed an idle connection. It peeks only at connections that implement `syscall.Conn`, so the peek is turned off here by a `Config.Dial` that wraps the `*net.TCPConn` in a struct hiding that method. The PING after `PingAfterIdle` (1 minute by default) never fires under this load, but it costs a clock comparison per borrow; `PingAfterIdle: -1` turns it off. Workload: %s.\n\n", contender.Get.Describe())
		for _, c := range contender.Liveness {
			fmt.Fprintf(b, "- **%s**: %s\n", c.Name, c.Describe)
		}
		fmt.Fprintf(b, "\n| Conc | Variant | ops/s | × nocheck | p50 | p99 | allocs/op | CPU/op | errors |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.liveness {
			off, hasOff := c.get(contender.RedispoolNoCheck.Name)
			for _, res := range c.results {
				ratio := "—"
				if hasOff {
					r, _, _ := paired(res, off, opsPerSec)
					ratio = fmt.Sprintf("%.3f", r)
				}
				fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %.1f | %s | %s |\n",
					c.conc, res.name, fmtOps(res.opsPerS), ratio, fmtDur(res.p50), fmtDur(res.p99), res.allocs, fmtDur(res.cpuPerOp), fmtErrs(res))
			}
		}
		fmt.Fprintln(b)
	}

	if len(r.recovery) > 0 {
		fmt.Fprintf(b, "## Recovery after a server restart\n\n")
		fmt.Fprintf(b, "redis-server is killed (SIGKILL) and started again on the same port; a probe dialing in a tight loop marks the moment it accepts connections again. %d goroutines send PING, each with a 1s deadline and a %v pause after a failure. Medians over %d restarts (min–max).\n\n", recoveryWorkers, recoveryBackoff, r.opts.recoveryReps)
		fmt.Fprintf(b, "- **Under load**: the goroutines keep sending through a %v outage. Recovery is the time from the server accepting connections to the first successful command; failures are commands that failed after that moment.\n", recoveryOutage)
		fmt.Fprintf(b, "- **Idle restart**: the server restarts while the pool holds idle connections (%d, filled before the restart), then each goroutine sends PING until one succeeds. Failures are commands that failed: stale connections handed to the application.\n\n", recoveryWorkers)
		fmt.Fprintf(b, "| Pool | under load: recovery | under load: failures after server back | idle restart: first success | idle restart: failed commands |\n|---|---:|---:|---:|---:|\n")
		for _, rr := range r.recovery {
			lmin, lmax := minMax(rr.loaded)
			imin, imax := minMax(rr.idle)
			fmt.Fprintf(b, "| %s | %s (%s–%s) | %s | %s (%s–%s) | %s |\n", rr.name,
				fmtDur(medianDuration(rr.loaded)), fmtDur(lmin), fmtDur(lmax), fmtCount(medianInt(rr.loadedFailsOK)),
				fmtDur(medianDuration(rr.idle)), fmtDur(imin), fmtDur(imax), fmtCount(medianInt(rr.idleFails)))
		}
		fmt.Fprintln(b)
	}

	if len(r.cluster) > 0 || r.clusterSkipped != "" {
		fmt.Fprintf(b, "## Cluster\n\n")
		if r.clusterSkipped != "" {
			fmt.Fprintf(b, "Not run: %s.\n\n", r.clusterSkipped)
		}
	}
	if len(r.cluster) > 0 {
		fmt.Fprintf(b, "A Redis Cluster of %d masters (no replicas) on 127.0.0.1, created with `redis-cli --cluster create`. Workload: GET of a %d-byte value, the key chosen round-robin from %d keys spread over every slot, so each op goes to the master of its key's slot. The slot map is loaded before measuring. One op is one GET; for Cluster.Get it includes the borrow and return. Columns as in End to end; × go-redis is the median over rounds of the contender's ops/s divided by go-redis's ClusterClient's in the same round. Also run as `go test -bench Cluster` in bench/.\n\n", clusterMasters, contender.ValueSize, contender.ClusterKeys)
		for _, c := range contender.ClusterContenders {
			fmt.Fprintf(b, "- **%s**: %s\n", c.Name, c.Describe)
		}
		fmt.Fprintf(b, "\n| Conc | Client | ops/s | × go-redis | p50 | p99 | allocs/op | B/op | CPU/op | errors |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.cluster {
			base, hasBase := c.get(contender.ClusterBaseline.Name)
			for _, res := range c.results {
				ratio := "—"
				if hasBase {
					r, _, _ := paired(res, base, opsPerSec)
					ratio = fmt.Sprintf("%.2f", r)
				}
				fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %.1f | %.0f | %s | %s |\n",
					c.conc, res.name, fmtOps(res.opsPerS), ratio, fmtDur(res.p50), fmtDur(res.p99), res.allocs, res.bytes, fmtDur(res.cpuPerOp), fmtErrs(res))
			}
		}
		fmt.Fprintf(b, "\nWhat routing itself costs — finding the key by the command's rules and hashing it — is measured without the network in the root package: `go test -run '^$' -bench 'Slot|CommandKey' -benchmem .`.\n\n")
	}

	if len(r.micro) > 0 {
		fmt.Fprintf(b, "## Micro-benchmark: borrow and return, no network\n\n")
		fmt.Fprintf(b, "`testing.Benchmark` of one borrow and one return (`b.RunParallel`, `SetParallelism` for the goroutine count), pool size %d, fake dialers; median ns/op over %d interleaved rounds of %v; the × columns are medians of per-round ratios. Also run as `go test -bench BorrowReturn` in bench/.\n\n", micro.PoolSize, r.opts.microRounds, r.opts.microBenchtime)
		for _, s := range micro.Subjects {
			fmt.Fprintf(b, "- **%s**: %s\n", s.Name, s.Describe)
		}
		fmt.Fprintf(b, "\n| Conc | Pool | ns/op | × %s | × redigo | allocs/op | B/op |\n|---:|---|---:|---:|---:|---:|---:|\n", micro.Baseline.Name)
		for _, row := range r.micro {
			var base, rg microResult
			for _, m := range row {
				if m.name == micro.Baseline.Name {
					base = m
				}
				if m.name == micro.Redigo.Name {
					rg = m
				}
			}
			for _, m := range row {
				if m.failed || len(m.nsPerOp) == 0 {
					fmt.Fprintf(b, "| %d | %s | failed | | | | |\n", m.conc, m.name)
					continue
				}
				fmt.Fprintf(b, "| %d | %s | %.0f | %s | %s | %d | %d |\n", m.conc, m.name, m.ns(), fmtPaired(m, base), fmtPaired(m, rg), m.allocs, m.bytes)
			}
		}
		fmt.Fprintln(b)
	}
}

// noiseFloor returns the range of redigo+TOB's throughput ratio to
// redigo over the cells: the two differ by a clock read per borrow, so
// the spread is mostly the machine's noise.
func (r *report) noiseFloor() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, c := range r.cells {
		a, okA := c.get(contender.RedigoTestOnBorrow.Name)
		b, okB := c.get(contender.Redigo.Name)
		if !okA || !okB {
			continue
		}
		ratio, _, _ := paired(a, b, opsPerSec)
		lo, hi, ok = min(lo, ratio), max(hi, ratio), true
	}
	return lo, hi, ok
}

// countEqual counts the rounds in which f is equal for a and b.
func countEqual(a, b result, f func(sample) float64) int {
	n := 0
	for i := range min(len(a.rounds), len(b.rounds)) {
		if f(a.rounds[i]) == f(b.rounds[i]) {
			n++
		}
	}
	return n
}

// speedup returns the median over rounds of base's ns/op divided by m's
// in the same round (m's rate over base's), and the rounds in which it
// reached target.
func speedup(base, m microResult, target float64) (ratio float64, won, of int) {
	var ratios []float64
	for i := range min(len(base.nsPerOp), len(m.nsPerOp)) {
		r := base.nsPerOp[i] / m.nsPerOp[i]
		ratios = append(ratios, r)
		if r >= target {
			won++
		}
		of++
	}
	return median(ratios), won, of
}

// pairedMicro returns the median over rounds of base's ns/op divided by
// m's in the same round (above 1 when m is faster), and the rounds in
// which m was at most 10% slower.
func pairedMicro(base, m microResult) (ratio float64, won, of int) {
	var ratios []float64
	for i := range min(len(base.nsPerOp), len(m.nsPerOp)) {
		r := base.nsPerOp[i] / m.nsPerOp[i]
		ratios = append(ratios, r)
		if r >= 1/1.10 {
			won++
		}
		of++
	}
	return median(ratios), won, of
}

// fmtPaired writes m's cost relative to base: the median over rounds of
// m's ns/op divided by base's in the same round.
func fmtPaired(m, base microResult) string {
	var ratios []float64
	for i := range min(len(base.nsPerOp), len(m.nsPerOp)) {
		ratios = append(ratios, m.nsPerOp[i]/base.nsPerOp[i])
	}
	if len(ratios) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", median(ratios))
}

func fmtErrs(r result) string {
	if r.errs == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%v)", r.errs, r.firstErr)
}

func fmtCount(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtOps writes ops/s with thousands separators.
func fmtOps(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtDur writes d in µs below a millisecond and in ms above.
func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return d.Round(time.Millisecond).String()
}
