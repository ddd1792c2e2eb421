package redispool

// The harness of the fault-injection suite (faults_test.go): a bounded
// concurrent workload whose every reply is checked against its command,
// fault windows that classify the errors, a sampler that watches the
// server's view of the pool, the end-of-run leak checks, and the chaos
// report (one row per scenario, written as markdown to the path in
// $REDISPOOL_CHAOS_REPORT).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

// chaosReportEnv names the file the chaos table is written to.
const chaosReportEnv = "REDISPOOL_CHAOS_REPORT"

// chaosRow is one line of the chaos report.
type chaosRow struct {
	Scenario         string
	Ops              int64 // operations run (a borrow and one or more commands)
	ErrorsFaulted    int64 // errors of operations that overlapped a fault: expected
	ErrorsRecovered  int64 // errors of operations that did not overlap one: must be 0
	Desyncs          int64 // replies that did not belong to their command: must be 0
	LeakedConns      int64 // Active after the run, plus pool connections the server still saw after Close
	LeakedGoroutines int64 // goroutines left after the scenario's cleanup
	Notes            string
}

// chaosReport collects the rows of the scenarios run by this process.
var chaosReport struct {
	mu   sync.Mutex // protects following fields
	rows []chaosRow
}

// recordChaos adds row to the report and, when $REDISPOOL_CHAOS_REPORT is
// set, rewrites the report file, so the file is complete whichever tests
// ran and in whatever order.
func recordChaos(t testing.TB, row chaosRow) {
	t.Helper()
	chaosReport.mu.Lock()
	chaosReport.rows = append(chaosReport.rows, row)
	rows := append([]chaosRow(nil), chaosReport.rows...)
	chaosReport.mu.Unlock()
	if path := os.Getenv(chaosReportEnv); path != "" {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(chaosMarkdown(rows)), 0o644); err != nil {
			t.Errorf("write chaos report: %v", err)
		}
	}
}

// chaosMarkdown renders rows as the report: when, where, and the table.
func chaosMarkdown(rows []chaosRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fault-injection run of %s on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())
	b.WriteString("| scenario | operations | errors while faulted | errors after recovery | desyncs | leaked connections | leaked goroutines | notes |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", r.Scenario, r.Ops, r.ErrorsFaulted,
			r.ErrorsRecovered, r.Desyncs, r.LeakedConns, r.LeakedGoroutines, strings.ReplaceAll(r.Notes, "|", `\|`))
	}
	return b.String()
}

var machineOnce = sync.OnceValue(func() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	race := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				race = ", -race"
			}
		}
	}
	server := "redis-server not found"
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		server = strings.TrimSpace(string(out))
		if i := strings.Index(server, " sha="); i > 0 {
			server = server[:i]
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs (%s), GOMAXPROCS %d, %s%s, %s",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpu, runtime.GOMAXPROCS(0), runtime.Version(), race, server)
})

func machine() string { return machineOnce() }

// runScenario runs body as a subtest, so that every server, proxy and pool
// it starts is cleaned up when it returns, then counts the goroutines left
// behind, records the scenario's row and fails on what must be zero.
func runScenario(t *testing.T, name string, body func(t *testing.T, r *chaosRun)) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	r := &chaosRun{name: name}
	t.Run("run", func(t *testing.T) {
		r.t = t
		body(t, r)
		r.finish()
	})
	if !r.started {
		return // skipped before any load, e.g. no redis-server
	}
	row := r.row()
	if err := goleak.Find(ignore); err != nil {
		row.LeakedGoroutines = int64(strings.Count(err.Error(), "Goroutine "))
		t.Errorf("%s: goroutines leaked: %v", name, err)
	}
	recordChaos(t, row)
	t.Logf("%s: %d ops, %d errors while faulted, %d after recovery, %d desyncs, %d leaked conns, %d leaked goroutines; %s",
		name, row.Ops, row.ErrorsFaulted, row.ErrorsRecovered, row.Desyncs, row.LeakedConns, row.LeakedGoroutines, row.Notes)
	if row.ErrorsRecovered != 0 {
		t.Errorf("%s: got %d errors outside fault windows; want 0", name, row.ErrorsRecovered)
	}
	if row.Desyncs != 0 {
		t.Errorf("%s: got %d desyncs; want 0", name, row.Desyncs)
	}
	if row.LeakedConns != 0 {
		t.Errorf("%s: got %d leaked connections; want 0", name, row.LeakedConns)
	}
	if n := r.overLimit.Load(); n != 0 {
		t.Errorf("%s: the server saw more than MaxTotal %d pool connections in %d confirmed samples (max %d)",
			name, r.maxTotal, n, r.serverMax.Load())
	}
	if n := r.statsOver.Load(); n != 0 {
		t.Errorf("%s: Stats reported Active+Idle above MaxTotal %d in %d samples", name, r.maxTotal, n)
	}
	if n := r.late.Load(); n != 0 {
		t.Errorf("%s: %d calls returned more than %v after their context deadline (worst %v); want 0",
			name, n, r.slack, time.Duration(r.worstOverrun.Load()))
	}
	if n := r.closeLate.Load(); n != 0 {
		t.Errorf("%s: %d Close calls took longer than CheckTimeout + %v; want 0", name, n, r.slack)
	}
}

// chaosRun is one scenario: a pool, the server that serves as the
// oracle, a workload and its counters.
type chaosRun struct {
	t    *testing.T
	name string

	srv      *redistest.Server // the oracle; nil for fake servers
	p        *Pool
	cfg      Config                          // as given to New
	maxTotal int                             // p's MaxTotal
	ours     func(redistest.ClientInfo) bool // picks the pool's clients out of CLIENT LIST
	secrets  []string                        // must never appear in an error or log

	// Set before start.
	op        func(ctx context.Context, r *chaosRun, g, i int) error // one operation; mixedOp by default
	opTimeout time.Duration                                          // context timeout of each operation
	slack     time.Duration                                          // tolerated lateness past a deadline
	backoff   time.Duration                                          // sleep after a failed operation

	fault   atomic.Int64 // odd while a fault is injected
	started bool

	ops, okFaulted, errFaulted, errRecovered, desyncs atomic.Int64
	late, closeLate                                   atomic.Int64
	maxErrLatency, worstOverrun                       atomic.Int64 // nanoseconds
	serverMax, overLimit, statsOver                   atomic.Int64
	leakedConns                                       int64

	workers   sync.WaitGroup
	stopLoad  chan struct{} // closed to stop the current workers; nil when none run
	stopSampl chan struct{}
	sampler   sync.WaitGroup

	mu        sync.Mutex     // protects following fields
	errCounts map[string]int // error messages, digits masked, by class
	errText   map[string]bool
	finished  bool
	notes     []string
}

// start creates the pool on cfg and starts the sampler. srv may be nil.
// Start every server, proxy and fake server of the scenario before it.
func (r *chaosRun) start(srv *redistest.Server, cfg Config) {
	t := r.t
	t.Helper()
	r.srv, r.cfg = srv, cfg
	if r.ours == nil {
		name := cfg.ClientName
		if name == "" {
			t.Fatal("chaosRun: Config.ClientName is how the server's clients are told apart; set it")
		}
		r.ours = func(ci redistest.ClientInfo) bool { return ci.Name == name }
	}
	if r.op == nil {
		r.op = mixedOp
	}
	if r.opTimeout == 0 {
		r.opTimeout = 5 * time.Second
	}
	if r.slack == 0 {
		r.slack = 2 * time.Second
	}
	if r.backoff == 0 {
		r.backoff = time.Millisecond
	}
	r.errCounts = make(map[string]int)
	r.errText = make(map[string]bool)
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg, err)
	}
	t.Cleanup(func() { p.Close() })
	r.p = p
	r.maxTotal = p.cfg.MaxTotal
	// Registered after the servers the scenario started, so it runs
	// before they stop, also when the scenario fails half-way.
	t.Cleanup(r.finish)
	r.started = true
	r.stopSampl = make(chan struct{})
	r.sampler.Add(1)
	go r.sample()
}

// beginFault and endFault bracket a fault: an operation that overlaps the
// window may fail, any other must not.
func (r *chaosRun) beginFault() {
	if r.fault.Add(1)%2 != 1 {
		panic("chaosRun: nested beginFault")
	}
}

func (r *chaosRun) endFault() {
	if r.fault.Add(1)%2 != 0 {
		panic("chaosRun: endFault without beginFault")
	}
}

// load starts n workers that run operations until stopLoad; it returns a
// function that stops them and waits for them.
func (r *chaosRun) load(n int) (stop func()) {
	r.t.Helper()
	if r.stopLoad != nil {
		r.t.Fatal("chaosRun: load while workers run")
	}
	r.stopLoad = make(chan struct{})
	stopCh := r.stopLoad
	for g := range n {
		r.workers.Add(1)
		go r.work(g, stopCh)
	}
	return r.stopWorkers
}

// stopWorkers stops the workers of load and waits for them; every
// operation is bounded by opTimeout, Close by CheckTimeout, so they stop
// soon. It is idempotent.
func (r *chaosRun) stopWorkers() {
	if r.stopLoad == nil {
		return
	}
	close(r.stopLoad)
	r.stopLoad = nil
	done := make(chan struct{})
	go func() {
		r.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(r.opTimeout + 30*time.Second):
		r.t.Errorf("%s: workers still running 30s after they were told to stop: the pool hangs", r.name)
		<-done
	}
}

// maxOpsPerWorker bounds every worker loop, whatever the clock does.
const maxOpsPerWorker = 200000

func (r *chaosRun) work(g int, stop <-chan struct{}) {
	defer r.workers.Done()
	for i := 0; i < maxOpsPerWorker; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if err := r.runOp(g, i); err != nil && r.backoff > 0 {
			time.Sleep(r.backoff)
		}
	}
}

// runOp runs one operation and classifies its outcome.
func (r *chaosRun) runOp(g, i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opTimeout)
	defer cancel()
	f0 := r.fault.Load()
	start := time.Now()
	err := r.op(ctx, r, g, i)
	elapsed := time.Since(start)
	f1 := r.fault.Load()
	r.ops.Add(1)
	faulted := f0 != f1 || f0%2 == 1 || errors.As(err, new(*injectedError))
	if err == nil {
		if faulted {
			r.okFaulted.Add(1)
		}
		return nil
	}
	var de *desyncError
	switch {
	case errors.As(err, &de):
		r.desyncs.Add(1)
		r.noteErr("desync", err)
	case faulted:
		r.errFaulted.Add(1)
		storeMax(&r.maxErrLatency, int64(elapsed))
		r.noteErr("faulted", err)
	default:
		r.errRecovered.Add(1)
		r.noteErr("UNEXPECTED", err)
	}
	return err
}

// noteErr counts err's message by class, digits masked, for the log, and
// keeps the distinct texts for the secret check.
func (r *chaosRun) noteErr(class string, err error) {
	msg := err.Error()
	key := class + ": " + maskDigits(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errCounts) < 200 || r.errCounts[key] > 0 {
		r.errCounts[key]++
	}
	if len(r.errText) < 5000 {
		r.errText[msg] = true
	}
}

func maskDigits(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = '#'
		}
	}
	return string(b)
}

// note adds a remark to the scenario's row.
func (r *chaosRun) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

// sample watches the server's view of the pool every 25ms: the most pool
// connections it sees at once must not exceed MaxTotal. The server
// notices closed connections a little after the pool closes them (and
// after a stall or a partition, all at once), so a count above MaxTotal
// counts only when it persists over 4 consecutive samples.
func (r *chaosRun) sample() {
	defer r.sampler.Done()
	over := 0
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.stopSampl:
			return
		case <-tick.C:
		}
		st := r.p.Stats()
		if st.Active+st.Idle > r.maxTotal {
			r.statsOver.Add(1)
		}
		if r.srv == nil {
			continue
		}
		n, err := r.serverCount()
		if err != nil {
			over = 0
			continue // server down or stalled: nothing to compare
		}
		storeMax(&r.serverMax, int64(n))
		if n <= r.maxTotal {
			over = 0
			continue
		}
		if over++; over == 4 {
			r.overLimit.Add(1)
			r.note("server saw %d pool connections for 100ms", n)
		}
	}
}

// serverCount counts the pool's connections as the server sees them. It
// does not fail the test, so it may run on any goroutine.
func (r *chaosRun) serverCount() (int, error) {
	reply, err := r.srv.Exec("CLIENT", "LIST")
	if err != nil {
		return 0, err
	}
	s, _ := reply.(string)
	infos, err := redistest.ParseClientList(s)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ci := range infos {
		if ci.Name != redistest.AdminName && r.ours(ci) {
			n++
		}
	}
	return n, nil
}

// waitServerCount polls the server until it sees want pool connections or
// 5 seconds pass, and returns the last count.
func (r *chaosRun) waitServerCount(want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := r.serverCount()
		if err == nil && n == want {
			return n
		}
		if time.Now().After(deadline) {
			if err != nil {
				r.t.Errorf("%s: count the server's clients: %v", r.name, err)
				return 0
			}
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish stops the workload and checks for leaks: Active must be back to
// 0, the server must see exactly the pool's idle connections (more would
// be connections the pool lost track of), and none once the pool is
// closed. It runs as a cleanup of the scenario's subtest and is
// idempotent.
func (r *chaosRun) finish() {
	r.mu.Lock()
	done := r.finished || !r.started
	r.finished = true
	r.mu.Unlock()
	if done {
		return
	}
	t := r.t
	r.stopWorkers()
	close(r.stopSampl)
	r.sampler.Wait()

	// The pipeline gives its shared connections back once they have
	// had nothing in flight for a moment; until then the server sees
	// them and Stats counts them in neither Active nor Idle.
	st := r.p.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.Shared != 0 && time.Now().Before(deadline); st = r.p.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.Shared != 0 {
		r.leakedConns += int64(st.Shared)
		t.Errorf("%s: Stats().Shared = %d 5s after the workload stopped; want 0: idle shared connections go back to the pool (%+v)", r.name, st.Shared, st)
	}
	if st.Active != 0 {
		r.leakedConns += int64(st.Active)
		t.Errorf("%s: Stats().Active = %d after every operation returned; want 0 (%+v)", r.name, st.Active, st)
	}
	if r.srv != nil && r.srv.Running() {
		// Do's auto-pipelining keeps a shared connection for a few
		// milliseconds after its last command, then gives it back as
		// idle: the pool holds both kinds, and a connection moving from
		// one to the other stays counted.
		held := st.Idle + st.Shared
		if n := r.waitServerCount(held); n > held {
			r.leakedConns += int64(n - held)
			t.Errorf("%s: the server sees %d pool connections; the pool holds %d (%+v): it lost track of %d",
				r.name, n, held, st, n-held)
		}
	}
	r.p.Close()
	if st := r.p.Stats(); st.Active != 0 || st.Idle != 0 {
		t.Errorf("%s: Stats after Close = %+v; want Active 0, Idle 0", r.name, st)
	}
	if r.srv != nil && r.srv.Running() {
		if n := r.waitServerCount(0); n != 0 {
			r.leakedConns += int64(n)
			t.Errorf("%s: the server still sees %d pool connections 5s after Close; want 0", r.name, n)
		}
	}
	r.checkSecrets()
	r.logErrors()
}

// checkSecrets fails if a secret appears in any error the workload saw.
func (r *chaosRun) checkSecrets() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, secret := range r.secrets {
		for msg := range r.errText {
			if strings.Contains(msg, secret) {
				r.t.Errorf("%s: error contains a password: %q", r.name, msg)
				return
			}
		}
	}
}

// logErrors logs the most frequent error messages of each class.
func (r *chaosRun) logErrors() {
	r.mu.Lock()
	defer r.mu.Unlock()
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range r.errCounts {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].k < all[j].k })
	for i, e := range all {
		if i == 8 {
			r.t.Logf("%s: ... %d more distinct errors", r.name, len(all)-i)
			break
		}
		r.t.Logf("%s: %6d × %s", r.name, e.n, e.k)
	}
}

// errorMessages returns the distinct error messages seen so far.
func (r *chaosRun) errorMessages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for m := range r.errText {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func (r *chaosRun) row() chaosRow {
	r.mu.Lock()
	notes := append([]string(nil), r.notes...)
	r.mu.Unlock()
	if d := r.maxErrLatency.Load(); d > 0 {
		notes = append(notes, fmt.Sprintf("slowest error %v", time.Duration(d).Round(time.Millisecond)))
	}
	switch n := r.serverMax.Load(); {
	case n > int64(r.maxTotal):
		notes = append(notes, fmt.Sprintf("server count peaked at %d > MaxTotal %d for under 100ms "+
			"(connections the pool had closed and the server had not yet reaped)", n, r.maxTotal))
	case n > 0:
		notes = append(notes, fmt.Sprintf("server saw at most %d of MaxTotal %d", n, r.maxTotal))
	}
	return chaosRow{
		Scenario:        r.name,
		Ops:             r.ops.Load(),
		ErrorsFaulted:   r.errFaulted.Load(),
		ErrorsRecovered: r.errRecovered.Load(),
		Desyncs:         r.desyncs.Load(),
		LeakedConns:     r.leakedConns,
		Notes:           strings.Join(notes, "; "),
	}
}

// checkDeadline records a call on ctx that returned later than ctx's
// deadline plus slack.
func (r *chaosRun) checkDeadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		return
	}
	if over := time.Since(dl); over > r.slack {
		r.late.Add(1)
		storeMax(&r.worstOverrun, int64(over))
	}
}

// get borrows under ctx, checking the deadline.
func (r *chaosRun) get(ctx context.Context) (redis.Conn, error) {
	c, err := r.p.GetContext(ctx)
	r.checkDeadline(ctx)
	return c, err
}

// put returns c, checking that Close is bounded by CheckTimeout.
func (r *chaosRun) put(c redis.Conn) {
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > r.p.cfg.CheckTimeout+r.slack {
		r.closeLate.Add(1)
	}
}

// do runs a command under ctx on c, checking the deadline.
func (r *chaosRun) do(ctx context.Context, c redis.Conn, cmd string, args ...any) (any, error) {
	reply, err := c.(redis.ConnWithContext).DoContext(ctx, cmd, args...)
	r.checkDeadline(ctx)
	return reply, err
}

// receive reads a pipelined reply under ctx, checking the deadline.
func (r *chaosRun) receive(ctx context.Context, c redis.Conn) (any, error) {
	reply, err := c.(redis.ConnWithContext).ReceiveContext(ctx)
	r.checkDeadline(ctx)
	return reply, err
}

// token is unique to operation i of worker g in this scenario: a reply
// carrying another token is a desync.
func (r *chaosRun) token(g, i int, part string) string {
	return fmt.Sprintf("%s/%d/%d/%s", r.p.cfg.ClientName, g, i, part)
}

// desyncError is a reply that does not belong to its command.
type desyncError struct {
	cmd  string
	want string
	got  any
}

func (e *desyncError) Error() string {
	return fmt.Sprintf("desync: %s: got %s; want %q", e.cmd, formatReply(e.got), e.want)
}

// injectedError marks the error of an operation whose fault the operation
// itself injected (a context it cancelled): it counts as faulted.
type injectedError struct{ err error }

func (e *injectedError) Error() string { return e.err.Error() }
func (e *injectedError) Unwrap() error { return e.err }

// wantBulk checks that reply is the bulk string want.
func wantBulk(cmd string, reply any, err error, want string) error {
	if err != nil {
		return err
	}
	if b, ok := reply.([]byte); !ok || string(b) != want {
		return &desyncError{cmd: cmd, want: want, got: reply}
	}
	return nil
}

// wantStatus checks that reply is the status reply want, e.g. OK.
func wantStatus(cmd string, reply any, err error, want string) error {
	if err != nil {
		return err
	}
	if s, ok := reply.(string); !ok || s != want {
		return &desyncError{cmd: cmd, want: want, got: reply}
	}
	return nil
}

// mixedOp is the default operation: one of five shapes, each checking
// that every reply carries the operation's own token.
func mixedOp(ctx context.Context, r *chaosRun, g, i int) error {
	tok := r.token(g, i, "a")
	if i%5 == 0 {
		reply, err := r.p.Do(ctx, "ECHO", tok)
		r.checkDeadline(ctx)
		return wantBulk("Pool.Do ECHO", reply, err, tok)
	}
	c, err := r.get(ctx)
	if err != nil {
		return err
	}
	defer r.put(c)
	switch i % 5 {
	case 1: // two commands on one connection
		reply, err := r.do(ctx, c, "ECHO", tok)
		if err := wantBulk("ECHO", reply, err, tok); err != nil {
			return err
		}
		tok2 := r.token(g, i, "b")
		reply, err = r.do(ctx, c, "ECHO", tok2)
		return wantBulk("second ECHO", reply, err, tok2)
	case 2: // a pipeline read with ReceiveContext
		toks := [3]string{tok, r.token(g, i, "b"), r.token(g, i, "c")}
		for _, tk := range toks {
			if err := c.Send("ECHO", tk); err != nil {
				return err
			}
		}
		if err := c.Flush(); err != nil {
			return err
		}
		for k, tk := range toks {
			reply, err := r.receive(ctx, c)
			if err := wantBulk(fmt.Sprintf("pipelined ECHO %d", k), reply, err, tk); err != nil {
				return err
			}
		}
		return nil
	case 3: // a transaction
		reply, err := r.do(ctx, c, "MULTI")
		if err := wantStatus("MULTI", reply, err, "OK"); err != nil {
			return err
		}
		reply, err = r.do(ctx, c, "ECHO", tok)
		if err := wantStatus("ECHO in MULTI", reply, err, "QUEUED"); err != nil {
			return err
		}
		reply, err = r.do(ctx, c, "EXEC")
		if err != nil {
			return err
		}
		if rs, ok := reply.([]any); !ok || len(rs) != 1 {
			return &desyncError{cmd: "EXEC", want: "[" + tok + "]", got: reply}
		}
		return wantBulk("EXEC", reply.([]any)[0], nil, tok)
	default: // session state the return must undo
		reply, err := r.do(ctx, c, "SELECT", 1)
		if err := wantStatus("SELECT", reply, err, "OK"); err != nil {
			return err
		}
		reply, err = r.do(ctx, c, "ECHO", tok)
		return wantBulk("ECHO after SELECT", reply, err, tok)
	}
}

// echoOp is one Pool.Do ECHO: the lightest operation.
func echoOp(ctx context.Context, r *chaosRun, g, i int) error {
	tok := r.token(g, i, "e")
	reply, err := r.p.Do(ctx, "ECHO", tok)
	r.checkDeadline(ctx)
	return wantBulk("Pool.Do ECHO", reply, err, tok)
}

// killRandom kills up to n random pool connections and returns how many
// the server killed.
func (r *chaosRun) killRandom(rng *rand.Rand, n int) int {
	infos := r.srv.ClientList(r.t)
	var ours []redistest.ClientInfo
	for _, ci := range infos {
		if ci.Name != redistest.AdminName && r.ours(ci) {
			ours = append(ours, ci)
		}
	}
	rng.Shuffle(len(ours), func(i, j int) { ours[i], ours[j] = ours[j], ours[i] })
	killed := 0
	for _, ci := range ours[:min(n, len(ours))] {
		if k, err := r.srv.Exec("CLIENT", "KILL", "ID", ci.ID); err == nil {
			if k, ok := k.(int64); ok {
				killed += int(k)
			}
		}
	}
	return killed
}
