package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
)

// An op is one kind of operation in a workload's command mix.
type op int

const (
	opGet      op = iota // GET of a random key
	opSet                // SET of a random key to a value of --size bytes
	opIncr               // INCR of a random counter
	opPing               // PING
	opMulti              // MULTI, INCR, INCR, EXEC: a transaction
	opPipeline           // --depth GETs sent at once, then their replies read
	numOps
)

var opNames = [numOps]string{"get", "set", "incr", "ping", "multi", "pipeline"}

func (o op) String() string { return opNames[o] }

// A mix is a weighted choice of operations.
type mix []weighted

type weighted struct {
	op     op
	weight int
}

// parseMix parses "get=80,set=20": operation names with integer weights.
func parseMix(s string) (mix, error) {
	var m mix
	seen := map[op]bool{}
	total := 0
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("--mix %q: want NAME=WEIGHT pairs separated by commas, such as get=80,set=20", s)
		}
		o := op(slices.Index(opNames[:], strings.ToLower(name)))
		if o < 0 {
			return nil, fmt.Errorf("--mix %q: unknown operation %q; want one of %s", s, name, strings.Join(opNames[:], ", "))
		}
		if seen[o] {
			return nil, fmt.Errorf("--mix %q: %s appears twice", s, o)
		}
		seen[o] = true
		weight, err := strconv.Atoi(w)
		if err != nil || weight < 0 {
			return nil, fmt.Errorf("--mix %q: weight %q of %s is not a non-negative integer", s, w, o)
		}
		if weight > 0 {
			m = append(m, weighted{o, weight})
			total += weight
		}
	}
	if total == 0 {
		return nil, fmt.Errorf("--mix %q: the weights add up to zero", s)
	}
	return m, nil
}

func (m mix) String() string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = e.op.String() + "=" + strconv.Itoa(e.weight)
	}
	return strings.Join(parts, ",")
}

func (m mix) total() int {
	t := 0
	for _, e := range m {
		t += e.weight
	}
	return t
}

// pick returns the operation that n, in [0, m.total()), falls on.
func (m mix) pick(n int) op {
	for _, e := range m {
		if n < e.weight {
			return e.op
		}
		n -= e.weight
	}
	return m[len(m)-1].op
}

// loadFlags are the flags of the commands that generate load: bench and
// stats.
type loadFlags struct {
	clients     int
	requests    int64
	duration    time.Duration
	mix         string
	size        int
	keys        int
	depth       int
	pipelining  pipelineMode
	prefix      string
	metricsAddr string
}

// pipelineMode is --pipeline: whether Do auto-pipelines
// (Config.PipelineConns), or both in turn.
type pipelineMode string

const (
	pipelineDefault pipelineMode = ""     // the library's default: on
	pipelineOn      pipelineMode = "on"   // PipelineConns 0, the default
	pipelineOff     pipelineMode = "off"  // PipelineConns -1: every Do borrows a connection
	pipelineBoth    pipelineMode = "both" // off, then on, and the two compared (bench only)
)

func (m *pipelineMode) String() string { return string(*m) }

func (m *pipelineMode) Set(s string) error {
	switch v := pipelineMode(strings.ToLower(s)); v {
	case pipelineOn, pipelineOff, pipelineBoth:
		*m = v
		return nil
	}
	if _, err := strconv.Atoi(s); err == nil {
		return fmt.Errorf("want on, off or both (the GETs of a pipeline operation are --depth %s now)", s)
	}
	return errors.New("want on, off or both")
}

// conns returns the PipelineConns the mode asks for, and whether it
// asks for anything.
func (m pipelineMode) conns(cfg redispool.Config) (int, bool) {
	switch m {
	case pipelineOff:
		return -1, true
	case pipelineOn:
		return max(cfg.PipelineConns, 0), true
	}
	return 0, false
}

func (f *loadFlags) register(fs *flag.FlagSet, clients int, duration string) {
	fs.IntVar(&f.clients, "c", clients, "number of concurrent `clients`")
	fs.Int64Var(&f.requests, "n", 0, "stop after this many operations")
	fs.DurationVar(&f.duration, "d", 0, "stop after this `duration` "+duration)
	fs.StringVar(&f.mix, "mix", "get=80,set=20", "command `mix` as weighted operations: get, set, incr, ping, multi (MULTI/INCR/INCR/EXEC), pipeline")
	fs.IntVar(&f.size, "size", 64, "size of SET values in `bytes`")
	fs.IntVar(&f.keys, "keys", 10000, "number of distinct keys to spread operations over")
	fs.IntVar(&f.depth, "depth", 10, "GETs per pipeline operation")
	fs.Var(&f.pipelining, "pipeline", "`on` or off: whether get, set, incr and ping, sent with Do, are auto-pipelined (Config.PipelineConns; default on)")
	fs.StringVar(&f.prefix, "key-prefix", "redispool-cli:", "`prefix` of every key the workload touches")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics of the pool at http://`addr`/metrics while running, e.g. :9121")
}

// getter is what a workload sends its commands through: a
// *redispool.Pool, or a *redispool.Cluster, whose connections bind to a
// node at their first keyed command.
type getter interface {
	GetContext(context.Context) (redis.Conn, error)
	Do(ctx context.Context, cmd string, args ...any) (any, error)
}

// workload checks the flags and returns the workload they describe, to
// run on p.
func (f *loadFlags) workload(p getter, minClients int) (*workload, error) {
	m, err := parseMix(f.mix)
	switch {
	case err != nil:
		return nil, usageError{err}
	case f.clients < minClients:
		return nil, usagef("-c %d: want at least %d", f.clients, minClients)
	case f.requests < 0:
		return nil, usagef("-n %d: want a positive number of operations", f.requests)
	case f.duration < 0:
		return nil, usagef("-d %v: want a positive duration", f.duration)
	case f.size < 0:
		return nil, usagef("--size %d: want a non-negative size", f.size)
	case f.keys < 1:
		return nil, usagef("--keys %d: want at least 1", f.keys)
	case f.depth < 1:
		return nil, usagef("--depth %d: want at least 1", f.depth)
	}
	return &workload{
		pool:     p,
		mix:      m,
		total:    m.total(),
		value:    []byte(strings.Repeat("x", f.size)),
		keys:     f.keys,
		prefix:   f.prefix,
		pipeline: f.depth,
	}, nil
}

// A workload is a command mix to run through a pool.
type workload struct {
	pool     getter
	cluster  bool // keys of one operation must share a hash slot
	mix      mix
	total    int
	value    []byte
	keys     int
	prefix   string
	pipeline int
}

func (w *workload) key() string {
	return w.prefix + "key:" + strconv.Itoa(rand.IntN(w.keys))
}

func (w *workload) counter() string {
	return w.prefix + "counter:" + strconv.Itoa(rand.IntN(w.keys))
}

// tagged returns a key of kind ("key" or "counter") with a random hash
// tag, "<prefix>kind:{N}", for operations that name several keys on a
// cluster: there one connection serves one node, and a transaction one
// slot, so the transaction's two counters ({N} and {N}:2) and the
// pipeline's GETs ({N}:0, {N}:1 ...) share the tag. N is random, so the
// operations still spread over every slot.
func (w *workload) tagged(kind string) string {
	return w.prefix + kind + ":{" + strconv.Itoa(rand.IntN(w.keys)) + "}"
}

// do runs one operation: a single command with Do, which auto-pipelines
// it unless --pipeline off, as a service would send it; a transaction or
// a pipeline on a connection borrowed for it. Neither waits for the
// load's end, so that stopping a load does not count as borrow timeouts.
func (w *workload) do(o op) error {
	ctx := context.Background()
	var err error
	switch o {
	case opGet:
		_, err = w.pool.Do(ctx, "GET", w.key())
		return err
	case opSet:
		_, err = w.pool.Do(ctx, "SET", w.key(), w.value)
		return err
	case opIncr:
		_, err = w.pool.Do(ctx, "INCR", w.counter())
		return err
	case opPing:
		_, err = w.pool.Do(ctx, "PING")
		return err
	}
	conn, err := w.pool.GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch o {
	case opMulti:
		a, b := w.counter(), w.counter()
		if w.cluster {
			a = w.tagged("counter")
			b = a + ":2"
		}
		conn.Send("MULTI")
		conn.Send("INCR", a)
		conn.Send("INCR", b)
		_, err = conn.Do("EXEC")
	case opPipeline:
		var tag string
		if w.cluster {
			tag = w.tagged("key") + ":"
		}
		for i := range w.pipeline {
			if w.cluster {
				conn.Send("GET", tag+strconv.Itoa(i))
			} else {
				conn.Send("GET", w.key())
			}
		}
		_, err = conn.Do("") // flushes and reads every reply
	}
	return err
}

// A load is a workload running on a number of clients.
type load struct {
	start time.Time
	stop  chan struct{} // closed to ask the clients to finish
	done  chan struct{} // closed when they have
	halt  func()

	ops  atomic.Int64 // operations that succeeded
	errs atomic.Int64 // operations that failed
	// longest is the longest stall of any client: from when (since start)
	// and how long it went without completing an operation. Protected by
	// errMu.
	longest stall
	// firstErr and lastErr are when the first and the last failure
	// happened, in nanoseconds since start; 0 while none has.
	firstErr, lastErr atomic.Int64
	issued            atomic.Int64 // operations started, against the -n limit
	elapsed           time.Duration
	hist              histogram // successful operations, merged from the clients' when done
	failHist          histogram // failed operations, likewise
	errMu             sync.Mutex
	errTexts          map[string]int64 // protected by errMu: counts of the first distinct errors
}

// maxErrTexts is how many distinct error messages a load remembers.
const maxErrTexts = 5

// start starts the workload on clients goroutines, which stop after
// limit operations in all (if limit > 0) or when halted. With no clients
// the load runs, idle, until halted.
func (w *workload) start(clients int, limit int64) *load {
	l := &load{
		start:    time.Now(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		errTexts: map[string]int64{},
	}
	var once sync.Once
	l.halt = func() { once.Do(func() { close(l.stop) }) }

	hists := make([][2]histogram, clients) // successes, failures
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(l, &hists[i][0], &hists[i][1], limit)
		}()
	}
	go func() {
		wg.Wait()
		if clients == 0 {
			<-l.stop
		}
		l.elapsed = time.Since(l.start)
		for i := range hists {
			l.hist.merge(&hists[i][0])
			l.failHist.merge(&hists[i][1])
		}
		close(l.done)
	}()
	return l
}

func (w *workload) client(l *load, h, failed *histogram, limit int64) {
	// The client's longest wait between two completed operations: during
	// a failover, how long the service stalled. Kept locally, merged at
	// the end, so that clients share nothing per operation.
	lastOK := l.start
	var longest stall
	defer l.noteStall(&longest)
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if limit > 0 && l.issued.Add(1) > limit {
			return
		}
		o := w.mix.pick(rand.IntN(w.total))
		start := time.Now()
		err := w.do(o)
		d := time.Since(start)
		if err == nil {
			h.record(d)
			l.ops.Add(1)
			now := start.Add(d)
			if now.Sub(lastOK) > longest.length {
				longest = stall{from: lastOK.Sub(l.start), length: now.Sub(lastOK)}
			}
			lastOK = now
			continue
		}
		failed.record(d)
		l.fail(err)
		// Back off rather than spin on an unreachable server or, with
		// --fail-fast, on an exhausted pool.
		backoff := 10 * time.Millisecond
		if errors.Is(err, redispool.ErrPoolExhausted) {
			backoff = time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-l.stop:
		case <-t.C:
		}
		t.Stop()
	}
}

// stall is a stretch of time in which a client completed no operation.
type stall struct{ from, length time.Duration }

func (l *load) noteStall(s *stall) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if s.length > l.longest.length {
		l.longest = *s
	}
}

func (l *load) fail(err error) {
	l.errs.Add(1)
	at := max(int64(time.Since(l.start)), 1)
	l.firstErr.CompareAndSwap(0, at)
	l.lastErr.Store(at)
	msg := errorGroup(err)
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if _, ok := l.errTexts[msg]; ok || len(l.errTexts) < maxErrTexts {
		l.errTexts[msg]++
	}
}

// localPort matches the local end of a connection in a net.OpError's
// message: the "56812->" of "read tcp 127.0.0.1:56812->127.0.0.1:6379".
var localPort = regexp.MustCompile(`:\d+->`)

// inFlight matches the count of commands a failed shared connection
// took down with it: "failing the 11 commands in flight".
var inFlight = regexp.MustCompile(`failing the \d+ commands in flight`)

// errorGroup returns the message under which err is counted. Errors that
// differ only in the ephemeral port of the connection they happened on,
// or in how many commands a failed shared connection had in flight, are
// one: twelve timeouts are one line with a count of 12.
func errorGroup(err error) string {
	msg := localPort.ReplaceAllString(err.Error(), ":*->")
	msg = inFlight.ReplaceAllString(msg, "failing the commands in flight")
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg = "error reply: " + msg
	}
	return msg
}

// errorTexts returns the first distinct error messages with their counts.
func (l *load) errorTexts() map[string]int64 {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return maps.Clone(l.errTexts)
}

// drive waits for l to finish: by itself (its -n limit), after d if
// d > 0, or when ctx ends, which it reports. If tick is not nil, it calls
// it every interval.
func drive(ctx context.Context, l *load, d, interval time.Duration, tick func()) (interrupted bool) {
	var deadline <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		deadline = t.C
	}
	var ticks <-chan time.Time
	if tick != nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		ticks = t.C
	}
	cancelled := ctx.Done()
	for {
		select {
		case <-l.done:
			return interrupted
		case <-deadline:
			l.halt()
			deadline = nil
		case <-cancelled:
			interrupted = true
			l.halt()
			cancelled = nil
		case <-ticks:
			tick()
		}
	}
}
