package contender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
)

// Workload is what one operation does. One operation is one borrow and
// return for the pools, whatever the number of commands in it.
type Workload int

const (
	// Get reads a 100-byte value: GET.
	Get Workload = iota
	// Set writes a 100-byte value: SET.
	Set
	// Multi increments a counter in a transaction: MULTI, INCR, EXEC in
	// one round trip.
	Multi
	// Pipeline sends ten GETs of the 100-byte value and reads the ten
	// replies: one round trip.
	Pipeline
	// Ping sends PING. It is not one of the measured workloads; the
	// recovery measurement uses it because it needs no data, and a
	// restarted server has none.
	Ping
)

// Workloads are the measured workloads, in report order.
var Workloads = []Workload{Get, Set, Multi, Pipeline}

// PipelineDepth is the number of commands in one Pipeline operation.
const PipelineDepth = 10

// ValueSize is the size of the value Get reads and Set writes.
const ValueSize = 100

func (w Workload) String() string {
	switch w {
	case Get:
		return "GET"
	case Set:
		return "SET"
	case Multi:
		return "MULTI"
	case Pipeline:
		return "PIPELINE"
	case Ping:
		return "PING"
	}
	return "Workload(" + strconv.Itoa(int(w)) + ")"
}

// Describe says what the workload sends, for reports.
func (w Workload) Describe() string {
	switch w {
	case Get:
		return fmt.Sprintf("GET of a %d-byte value", ValueSize)
	case Set:
		return fmt.Sprintf("SET of a %d-byte value", ValueSize)
	case Multi:
		return "MULTI, INCR, EXEC (one round trip)"
	case Pipeline:
		return fmt.Sprintf("pipeline of %d GETs of the %d-byte value (one round trip)", PipelineDepth, ValueSize)
	case Ping:
		return "PING"
	}
	return w.String()
}

// ParseWorkload parses a workload name as String writes it, in any case.
func ParseWorkload(s string) (Workload, error) {
	for _, w := range []Workload{Get, Set, Multi, Pipeline, Ping} {
		if strings.EqualFold(w.String(), s) {
			return w, nil
		}
	}
	return 0, fmt.Errorf("unknown workload %q: want GET, SET, MULTI, PIPELINE or PING", s)
}

// getKey holds the 100-byte value that Get and Pipeline read.
const getKey = "poolbench:get"

// Value is the 100-byte value Get reads and Set writes.
var Value = bytes.Repeat([]byte("v"), ValueSize)

// Prepare stores the value that Get and Pipeline read. The harness and
// the benchmarks call it once after starting the server.
func Prepare(ctx context.Context, addr string) error {
	c, err := redis.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer c.Close()
	if _, err := c.Do("SET", getKey, Value); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

// keys are one worker's keys and the argument lists built from them,
// made once so that an operation allocates nothing of the harness's.
type keys struct {
	get     []any // GET getKey
	set     []any // SET key Value
	incr    []any // INCR key
	setKey  string
	incrKey string
}

func newKeys(worker int) *keys {
	k := &keys{
		setKey:  "poolbench:set:" + strconv.Itoa(worker),
		incrKey: "poolbench:incr:" + strconv.Itoa(worker),
	}
	k.get = []any{getKey}
	k.set = []any{k.setKey, Value}
	k.incr = []any{k.incrKey}
	return k
}

var errShortValue = errors.New("GET returned a value of the wrong size")

// redigoOp returns the redigo form of w for one worker: it runs on a
// connection the caller has borrowed.
func redigoOp(w Workload, worker int) func(redis.Conn) error {
	k := newKeys(worker)
	switch w {
	case Get:
		return func(c redis.Conn) error {
			v, err := redis.Bytes(c.Do("GET", k.get...))
			if err == nil && len(v) != ValueSize {
				err = errShortValue
			}
			return err
		}
	case Set:
		return func(c redis.Conn) error {
			_, err := c.Do("SET", k.set...)
			return err
		}
	case Multi:
		return func(c redis.Conn) error {
			c.Send("MULTI")
			c.Send("INCR", k.incr...)
			r, err := redis.Values(c.Do("EXEC"))
			if err == nil && len(r) != 1 {
				err = fmt.Errorf("EXEC returned %d replies; want 1", len(r))
			}
			return err
		}
	case Pipeline:
		return func(c redis.Conn) error {
			for range PipelineDepth {
				c.Send("GET", k.get...)
			}
			if err := c.Flush(); err != nil {
				return err
			}
			var first error
			for range PipelineDepth {
				v, err := redis.Bytes(c.Receive())
				if err == nil && len(v) != ValueSize {
					err = errShortValue
				}
				if first == nil {
					first = err
				}
			}
			return first
		}
	case Ping:
		return func(c redis.Conn) error {
			_, err := c.Do("PING")
			return err
		}
	}
	panic("contender: unknown workload " + w.String())
}

// goredisOp returns the go-redis form of w for one worker.
func goredisOp(rdb *goredis.Client, w Workload, worker int) func(context.Context) error {
	k := newKeys(worker)
	switch w {
	case Get:
		return func(ctx context.Context) error {
			v, err := rdb.Get(ctx, getKey).Result()
			if err == nil && len(v) != ValueSize {
				err = errShortValue
			}
			return err
		}
	case Set:
		return func(ctx context.Context) error {
			return rdb.Set(ctx, k.setKey, Value, 0).Err()
		}
	case Multi:
		// The closures are made once per worker, as a careful caller
		// would, so that only go-redis's own allocations are counted;
		// opCtx passes each operation's context into them.
		var (
			opCtx context.Context
			incr  *goredis.IntCmd
		)
		fn := func(pipe goredis.Pipeliner) error {
			incr = pipe.Incr(opCtx, k.incrKey)
			return nil
		}
		return func(ctx context.Context) error {
			opCtx = ctx
			defer func() { opCtx = nil }()
			if _, err := rdb.TxPipelined(ctx, fn); err != nil {
				return err
			}
			return incr.Err()
		}
	case Pipeline:
		var opCtx context.Context
		cmds := make([]*goredis.StringCmd, PipelineDepth)
		fn := func(pipe goredis.Pipeliner) error {
			for i := range cmds {
				cmds[i] = pipe.Get(opCtx, getKey)
			}
			return nil
		}
		return func(ctx context.Context) error {
			opCtx = ctx
			defer func() { opCtx = nil }()
			if _, err := rdb.Pipelined(ctx, fn); err != nil {
				return err
			}
			for _, cmd := range cmds {
				if v, err := cmd.Result(); err != nil {
					return err
				} else if len(v) != ValueSize {
					return errShortValue
				}
			}
			return nil
		}
	case Ping:
		return func(ctx context.Context) error {
			return rdb.Ping(ctx).Err()
		}
	}
	panic("contender: unknown workload " + w.String())
}
