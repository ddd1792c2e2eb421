package contender

import (
	"context"
	"fmt"
	"net"

	"github.com/redis/rueidis"
)

// Rueidis is the auto-pipelining client: every goroutine's commands to
// one server go down a few shared connections, written in batches by
// one writer and matched to their callers by one reader. It is the
// client issue 16 measures redispool's Pool.Do against.
var Rueidis = Contender{
	Name:     "rueidis",
	Describe: "rueidis v1.0.80 Client, defaults (auto-pipelining, RESP3, PipelineMultiplex 2: 4 shared connections), DisableCache, commands built once and pinned; MULTI and PIPELINE through DoMulti",
	New: func(ctx context.Context, addr string, _ int) (Client, error) {
		c, err := NewRueidis([]string{addr})
		if err != nil {
			return nil, err
		}
		return rueidisClient{c}, nil
	},
}

// NewRueidis returns a rueidis client for addrs (a single server, or a
// cluster's seeds) with the timeouts every contender is given.
func NewRueidis(addrs []string) (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{
		InitAddress:      addrs,
		Dialer:           net.Dialer{Timeout: dialTimeout},
		ConnWriteTimeout: readTimeout,
		BlockingPoolSize: PoolSize,
		DisableCache:     true,
	})
}

type rueidisClient struct{ c rueidis.Client }

func (r rueidisClient) Op(w Workload, worker int) func(context.Context) error {
	return rueidisOp(r.c, w, worker)
}

func (r rueidisClient) Close() error { r.c.Close(); return nil }

// rueidisOp returns the rueidis form of w for one worker. Its commands
// are built once and pinned, so that rueidis neither rebuilds nor
// recycles them: only rueidis's own allocations are counted.
func rueidisOp(c rueidis.Client, w Workload, worker int) func(context.Context) error {
	k := newKeys(worker)
	switch w {
	case Get:
		get := c.B().Get().Key(getKey).Build().Pin()
		return func(ctx context.Context) error {
			v, err := c.Do(ctx, get).ToString()
			if err == nil && len(v) != ValueSize {
				err = errShortValue
			}
			return err
		}
	case Set:
		set := c.B().Set().Key(k.setKey).Value(rueidis.BinaryString(Value)).Build().Pin()
		return func(ctx context.Context) error {
			return c.Do(ctx, set).Error()
		}
	case Multi:
		cmds := rueidis.Commands{
			c.B().Multi().Build().Pin(),
			c.B().Incr().Key(k.incrKey).Build().Pin(),
			c.B().Exec().Build().Pin(),
		}
		return func(ctx context.Context) error {
			res := c.DoMulti(ctx, cmds...)
			for _, r := range res[:2] {
				if err := r.Error(); err != nil {
					return err
				}
			}
			r, err := res[2].ToArray()
			if err == nil && len(r) != 1 {
				err = fmt.Errorf("EXEC returned %d replies; want 1", len(r))
			}
			return err
		}
	case Pipeline:
		cmds := make(rueidis.Commands, PipelineDepth)
		for i := range cmds {
			cmds[i] = c.B().Get().Key(getKey).Build().Pin()
		}
		return func(ctx context.Context) error {
			for _, r := range c.DoMulti(ctx, cmds...) {
				v, err := r.ToString()
				if err == nil && len(v) != ValueSize {
					err = errShortValue
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
	case Ping:
		ping := c.B().Ping().Build().Pin()
		return func(ctx context.Context) error {
			return c.Do(ctx, ping).Error()
		}
	}
	panic("contender: unknown workload " + w.String())
}
