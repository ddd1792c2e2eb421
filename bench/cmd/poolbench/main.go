// Command poolbench compares redispool with redigo's redis.Pool, go-redis
// and dedicated connections against a redis-server it starts on a free
// loopback port, and prints a markdown report: throughput, latency
// percentiles and allocations per workload and concurrency, the cost of
// the liveness check, recovery after a server restart, the
// network-free borrow-and-return micro-benchmark, GET through
// redispool's Cluster and go-redis's ClusterClient on a 3-master Redis
// Cluster it starts, and the targets of issues 4 and 9 as PASS or FAIL
// (in a -quick run, the targets that compare rates are informational:
// its rounds are too short to resolve them).
//
// Every workload and concurrency is a cell. In a cell, each contender
// is warmed up, then the contenders run in interleaved rounds of a fixed
// duration (A B C, B C A, C A B, ...), so that machine noise hits them
// alike, and the report shows the median of each measure over the
// rounds.
//
// Usage:
//
//	poolbench [flags]
//
// The default run takes about five minutes; -quick takes about thirty
// seconds, for CI. Progress goes to stderr, the report to stdout and, with
// -o, to a file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redispool/redispool/bench/internal/contender"
	"github.com/redispool/redispool/bench/internal/rediscluster"
	"github.com/redispool/redispool/bench/internal/redisserver"
)

type options struct {
	duration, warmup time.Duration
	opTimeout        time.Duration // each operation's context has this deadline, if > 0
	rounds           int
	workloads        []contender.Workload
	concs            []int
	contenders       []contender.Contender
	livenessConcs    []int
	clusterConcs     []int
	microConcs       []int
	microRounds      int
	microBenchtime   time.Duration
	recoveryReps     int
	skip             map[string]bool
	out              string
	quick            bool
	strict           bool
}

// errTargetsFailed is returned by run with -strict when a target fails.
var errTargetsFailed = errors.New("a target failed (see the report)")

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		os.Exit(2)
	}
	if err := run(context.Background(), o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "poolbench:", err)
		if errors.Is(err, errTargetsFailed) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("poolbench", flag.ContinueOnError)
	var (
		o              options
		workloads      = fs.String("workloads", "GET,SET,MULTI,PIPELINE", "comma-separated workloads: GET, SET, MULTI, PIPELINE")
		concs          = fs.String("conc", "1,16,64,256", "comma-separated concurrencies (goroutines) of the end-to-end comparison")
		contenders     = fs.String("contenders", contenderNames(contender.All), "comma-separated contenders of the end-to-end comparison")
		livenessConcs  = fs.String("liveness-conc", "1,16,64", "concurrencies of the liveness-check measurement (GET)")
		microConcs     = fs.String("micro-conc", "1,16,64", "concurrencies of the micro-benchmark")
		clusterConcs   = fs.String("cluster-conc", "1,16,64", "concurrencies of the cluster comparison (GET on a 3-master cluster)")
		skip           = fs.String("skip", "", "comma-separated parts to leave out: e2e, liveness, recovery, cluster, micro")
		duration       = fs.Duration("duration", 80*time.Millisecond, "length of one contender's run in a round")
		warmup         = fs.Duration("warmup", 100*time.Millisecond, "length of each contender's warm-up run in a cell")
		rounds         = fs.Int("rounds", 20, "interleaved rounds per cell; the report shows medians over them")
		microRounds    = fs.Int("micro-rounds", 10, "interleaved rounds of the micro-benchmark")
		microBenchtime = fs.Duration("micro-benchtime", 100*time.Millisecond, "benchtime of one micro-benchmark run")
		recoveryReps   = fs.Int("recovery-reps", 3, "server restarts per contender and scenario in the recovery measurement")
		opTimeout      = fs.Duration("op-timeout", 0, "give each operation a context with this timeout (context.WithTimeout), as a service passes its request's context; 0: context.Background()")
	)
	fs.StringVar(&o.out, "o", "", "also write the report to this file")
	fs.BoolVar(&o.strict, "strict", false, "exit with status 3 when a target fails (by default the report says PASS or FAIL and the exit status is 0; informational targets of a -quick run never fail)")
	fs.BoolVar(&o.quick, "quick", false, "a run of about 30 seconds for CI: -duration 30ms -warmup 20ms -rounds 5 -micro-rounds 3 -micro-benchtime 20ms -recovery-reps 1, unless set explicitly")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: poolbench [flags]\n\nRuns the redispool benchmark suite against a redis-server it starts, and prints a markdown report.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]string{
			"duration": "30ms", "warmup": "20ms", "rounds": "5",
			"micro-rounds": "3", "micro-benchtime": "20ms", "recovery-reps": "1",
		}
		for name, v := range quick {
			if !set[name] {
				fs.Set(name, v)
			}
		}
	}
	o.duration, o.warmup, o.rounds, o.opTimeout = *duration, *warmup, *rounds, *opTimeout
	o.microRounds, o.microBenchtime, o.recoveryReps = *microRounds, *microBenchtime, *recoveryReps
	if o.duration <= 0 || o.warmup <= 0 || o.rounds < 1 || o.microRounds < 1 || o.microBenchtime <= 0 || o.recoveryReps < 1 {
		return o, errors.New("-duration, -warmup, -micro-benchtime must be positive; -rounds, -micro-rounds, -recovery-reps at least 1")
	}

	var err error
	for _, s := range splitList(*workloads) {
		w, err := contender.ParseWorkload(s)
		if err != nil {
			return o, err
		}
		o.workloads = append(o.workloads, w)
	}
	if o.concs, err = parseInts("-conc", *concs); err != nil {
		return o, err
	}
	if o.livenessConcs, err = parseInts("-liveness-conc", *livenessConcs); err != nil {
		return o, err
	}
	if o.microConcs, err = parseInts("-micro-conc", *microConcs); err != nil {
		return o, err
	}
	if o.clusterConcs, err = parseInts("-cluster-conc", *clusterConcs); err != nil {
		return o, err
	}
	if o.contenders, err = contender.Find(*contenders); err != nil {
		return o, err
	}
	o.skip = map[string]bool{}
	for _, s := range splitList(*skip) {
		switch s {
		case "e2e", "liveness", "recovery", "cluster", "micro":
			o.skip[s] = true
		default:
			return o, fmt.Errorf("-skip: unknown part %q: want e2e, liveness, recovery, cluster or micro", s)
		}
	}
	return o, nil
}

func contenderNames(cs []contender.Contender) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ",")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(name, s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// report is everything measured, for the markdown writer.
type report struct {
	opts     options
	meta     meta
	cells    []*cell
	liveness []*cell
	recovery []recoveryResult
	cluster  []*cell
	// clusterSkipped says why the cluster comparison did not run
	// (redis-cli missing), or is "".
	clusterSkipped string
	micro          [][]microResult // [conc][subject]
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	began := time.Now()
	progress := func(msg string) {
		fmt.Fprintf(stderr, "[%6.1fs] %s\n", time.Since(began).Seconds(), msg)
	}
	rep := &report{opts: o, meta: gatherMeta()}

	srv, err := redisserver.Start(ctx)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := contender.Prepare(ctx, srv.Addr); err != nil {
		return err
	}
	progress("redis-server on " + srv.Addr)

	if !o.skip["e2e"] {
		for _, w := range o.workloads {
			for _, conc := range o.concs {
				c, err := measureCell(ctx, srv.Addr, o.contenders, w, conc, o, progress)
				if err != nil {
					return err
				}
				rep.cells = append(rep.cells, c)
			}
		}
	}
	if !o.skip["liveness"] {
		for _, conc := range o.livenessConcs {
			c, err := measureCell(ctx, srv.Addr, contender.Liveness, contender.Get, conc, o, progress)
			if err != nil {
				return err
			}
			rep.liveness = append(rep.liveness, c)
		}
	}
	if !o.skip["recovery"] {
		// A server of its own, since the measurement kills it.
		rsrv, err := redisserver.Start(ctx)
		if err != nil {
			return err
		}
		rep.recovery, err = measureRecovery(ctx, rsrv, recoveryContenders(), o.recoveryReps, progress)
		rsrv.Close()
		if err != nil {
			return err
		}
	}
	if !o.skip["cluster"] {
		if err := measureCluster(ctx, rep, progress); err != nil {
			return err
		}
	}
	if !o.skip["micro"] {
		rep.micro, err = measureMicro(o.microConcs, o.microRounds, o.microBenchtime, progress)
		if err != nil {
			return err
		}
	}
	rep.meta.took = time.Since(began)
	rep.meta.loadEnd = loadAvg()
	progress("done")

	var b strings.Builder
	rep.write(&b)
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return err
	}
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if o.strict {
		for _, t := range rep.targets() {
			if !t.pass() && !t.informational(o.quick) {
				return errTargetsFailed
			}
		}
	}
	return nil
}

// measureCluster starts a 3-master Redis Cluster and runs the cluster
// contenders on it, GET only, at each of the cluster concurrencies.
func measureCluster(ctx context.Context, rep *report, progress func(string)) error {
	c, err := rediscluster.Start(ctx, clusterMasters)
	if errors.Is(err, rediscluster.ErrNotFound) {
		rep.clusterSkipped = err.Error()
		progress("cluster comparison skipped: " + err.Error())
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	seeds := strings.Join(c.Addrs, ",")
	if err := contender.PrepareCluster(ctx, seeds); err != nil {
		return err
	}
	progress("redis cluster on " + seeds)
	for _, conc := range rep.opts.clusterConcs {
		cl, err := measureCell(ctx, seeds, contender.ClusterContenders, contender.Get, conc, rep.opts, progress)
		if err != nil {
			return err
		}
		rep.cluster = append(rep.cluster, cl)
	}
	return nil
}

// clusterMasters is the size of the cluster of the cluster comparison.
const clusterMasters = 3

// recoveryContenders are the pooled contenders: a dedicated connection
// has no pool to recover.
func recoveryContenders() []contender.Contender {
	var out []contender.Contender
	for _, c := range contender.All {
		if c.Name != contender.Raw.Name {
			out = append(out, c)
		}
	}
	return out
}

// meta describes the machine and the run.
type meta struct {
	date      time.Time
	cpu       string
	cores     int
	procs     int
	goVersion string
	osArch    string
	kernel    string
	redis     string
	commit    string // of the redispool repository, as far as git can tell
	loadStart string
	loadEnd   string
	args      string
	took      time.Duration
}

func gatherMeta() meta {
	m := meta{
		date:      time.Now().UTC(),
		cpu:       cpuModel(),
		cores:     runtime.NumCPU(),
		procs:     runtime.GOMAXPROCS(0),
		goVersion: runtime.Version(),
		osArch:    runtime.GOOS + "/" + runtime.GOARCH,
		loadStart: loadAvg(),
		args:      strings.Join(os.Args[1:], " "),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		m.redis = strings.TrimSpace(string(out))
	}
	m.commit = gitCommit()
	return m
}

// gitCommit names the commit of the working tree, and says whether the
// root package (the library measured) has uncommitted changes.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not in a git work tree)"
	}
	rev := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ":(top,glob)*.go", ":(top)go.mod").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += ", with uncommitted changes to the root package"
	}
	return rev
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
