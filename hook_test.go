package redispool

import (
	"context"
	"sync"
	"testing"

	"github.com/gomodule/redigo/redis"
)

type ctxKey struct{}

// hookRecorder is a CommandHook that records what it is given.
type hookRecorder struct {
	mu   sync.Mutex
	seen []string // "NAME addr ctx-value error"
}

func (h *hookRecorder) hook(ctx context.Context, cmd CommandInfo) func(error) {
	v, _ := ctx.Value(ctxKey{}).(string)
	return func(err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		e := "ok"
		if err != nil {
			e = "err"
		}
		h.seen = append(h.seen, cmd.Name+" "+cmd.Network+" "+cmd.Addr+" "+v+" "+e)
	}
}

func (h *hookRecorder) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seen
	h.seen = nil
	return s
}

func TestCommandHookSeesUserCommands(t *testing.T) {
	var h hookRecorder
	p, s := miniPool(t, Config{CommandHook: h.hook, MaxTotal: 2})
	addr := s.Addr()
	ctx := context.WithValue(context.Background(), ctxKey{}, "req1")

	if _, err := p.Do(ctx, "SET", "k", "secret-value"); err != nil {
		t.Fatal(err)
	}
	c := mustGet(t, p)
	c.Do("GET", "k")
	redis.DoWithTimeout(c, 0, "INCR", "k") // an error reply: not an integer
	c.(redis.ConnWithContext).DoContext(ctx, "get", "k")
	c.Send("PING")    // queued: not seen
	c.Do("")          // a flush, no command: not seen
	c.Do("SELECT", 1) // leaves state: the reset on Close is the pool's, not seen
	c.Close()
	rc := p.RedigoPool().Get()
	rc.Do("EXISTS", "k")
	rc.Close()

	got := h.take()
	want := []string{
		"SET tcp " + addr + " req1 ok",
		"GET tcp " + addr + "  ok",
		"INCR tcp " + addr + "  err",
		"get tcp " + addr + " req1 ok",
		"SELECT tcp " + addr + "  ok",
		"EXISTS tcp " + addr + "  ok",
	}
	if len(got) != len(want) {
		t.Fatalf("hook saw %q; want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("command %d: hook saw %q; want %q", i, got[i], want[i])
		}
	}
}

func TestCommandHookOnClusterNodes(t *testing.T) {
	var h hookRecorder
	node, _ := fakeNode(t, func(int64, []string) *string { return ptr("+OK\r\n") })
	c, err := NewCluster(context.Background(), ClusterConfig{Addrs: []string{node}, Node: Config{CommandHook: h.hook}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.WithValue(context.Background(), ctxKey{}, "r")
	if _, err := c.Do(ctx, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	conn := c.Get()
	if _, err := conn.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	got := h.take()
	// The slot-map load (CLUSTER SLOTS) runs on a control connection, of
	// the pool's own, and is not a user's command.
	want := []string{"SET tcp " + node + " r ok", "SET tcp " + node + "  ok"}
	if len(got) != len(want) {
		t.Fatalf("hook saw %q; want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("command %d: hook saw %q; want %q", i, got[i], want[i])
		}
	}
}

// The hook costs no allocation of its own: a command allocates as much
// with a hook that returns nil as without one (where do only checks
// for nil).
func TestCommandHookAllocatesNothing(t *testing.T) {
	allocs := func(hook CommandHook) float64 {
		p, _ := miniPool(t, Config{CommandHook: hook})
		c := mustGet(t, p)
		defer c.Close()
		return testing.AllocsPerRun(200, func() { c.Do("PING") })
	}
	without := allocs(nil)
	with := allocs(func(context.Context, CommandInfo) func(error) { return nil })
	if with != without {
		t.Errorf("PING allocates %v times with a hook, %v without; want the same", with, without)
	}
}
