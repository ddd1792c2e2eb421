package redispool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

// The inline round trip: a caller that finds the shared connection idle
// does its own I/O, even when its context can end (a request's context
// with a deadline). These tests hold what that path promises when the
// context ends mid-command.

// TestPipelineInlineWithDeadlineCancelledBeforeReply: a lone caller
// with a deadline does its own round trip; its context ends while the
// server, paused, has not answered. It gets the context's error at
// once, the reply is read and dropped by the loop, and the connection
// stays in use.
func TestPipelineInlineWithDeadlineCancelledBeforeReply(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p, pl := pipelineOn(t, s, Config{ClientName: pipeName}, pipeConfig{idleReturn: time.Hour})
	if _, err := pl.do(context.Background(), "SET", []any{"n", 0}); err != nil {
		t.Fatal(err)
	}
	pp := pl.pipes[0]
	waitFor(t, func() bool { pp.mu.Lock(); defer pp.mu.Unlock(); return pp.state == pipeIdle })

	s.Do(t, "CLIENT", "PAUSE", "1000", "ALL")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := pl.do(ctx, "INCR", []any{"n"})
		done <- err
	}()
	// The caller does the I/O itself: no hand-off to the loop.
	waitFor(t, func() bool { pp.mu.Lock(); defer pp.mu.Unlock(); return pp.state == pipeInline })
	start := time.Now()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !isPoolErr(err) {
		t.Fatalf("INCR: got %v; want a redispool error wrapping context.Canceled", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("INCR returned %v after its cancellation; want at once, well before the pause ends", d)
	}
	// The caller holds the pipe (pipeInline) a moment before its write:
	// a cancel in that moment stops the write, and the connection, its
	// deadline in the past, is closed as cut short; after it, the INCR
	// runs when the pause ends and its reply is read and dropped, the
	// connection kept. Either way the INCR runs at most once, and its
	// reply must not reach the next caller: GET answers with a bulk
	// string, INCR with an integer.
	reply, err := pl.do(context.Background(), "GET", []any{"n"})
	got, ok := reply.([]byte)
	if err != nil || !ok {
		t.Fatalf("GET n = %#v, %v; want a bulk string, GET's own reply", reply, err)
	}
	info, _ := s.Do(t, "INFO", "commandstats").(string)
	incrs := "0"
	if m := regexp.MustCompile(`cmdstat_incr:calls=(\d+)`).FindStringSubmatch(info); m != nil {
		incrs = m[1]
	}
	if string(got) != incrs {
		t.Fatalf("GET n = %s after %s INCR calls on the server", got, incrs)
	}
	st := p.Stats()
	switch incrs {
	case "1": // written before the cancel: the connection stays
		if st.Created != 1 || st.Destroyed != 0 {
			t.Errorf("INCR written, then cancelled: Stats = %+v; want the one connection kept", st)
		}
	case "0": // cancelled before the write: closed as cut short
		t.Log("the cancel came before the write")
		if st.DestroyedBroken != 1 {
			t.Errorf("INCR cancelled before its write: Stats = %+v; want its connection closed", st)
		}
	default:
		t.Fatalf("%s INCR calls; want at most 1", incrs)
	}
	s.WaitClients(t, 1, isPipeConn) // the closed one may take a moment to go
}

func isPoolErr(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "redispool: ") }

// halfReplyServer answers the dial's PING and the first command, then
// sends the first bytes of a bulk reply to the next and nothing more.
func halfReplyServer(t *testing.T) *redistest.FakeServer {
	return redistest.NewFakeServer(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for i := 0; ; i++ {
			if _, err := redistest.ReadCommand(br); err != nil {
				return
			}
			reply := "$10\r\nabc"
			switch i {
			case 0:
				reply = "+PONG\r\n"
			case 1:
				reply = "+OK\r\n"
			}
			if _, err := io.WriteString(conn, reply); err != nil {
				return
			}
			if i > 1 {
				io.Copy(io.Discard, conn) // until the client closes it
				return
			}
		}
	})
}

// TestPipelineInlineCancelledMidReplyClosesTheConnection: the context
// ends while the inline caller reads a reply that has begun: what is
// left of it cannot be told from the next reply, so the connection is
// closed, and the caller gets its context's error.
func TestPipelineInlineCancelledMidReplyClosesTheConnection(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	srv := halfReplyServer(t)
	p := newTestPool(t, Config{Addr: srv.Addr(), PipelineConns: 1})
	if _, err := p.Do(context.Background(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	pp := p.pipes.pipes[0]
	waitFor(t, func() bool { pp.mu.Lock(); defer pp.mu.Unlock(); return pp.state == pipeIdle })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Do(ctx, "GET", "k")
	if !errors.Is(err, context.DeadlineExceeded) || !isPoolErr(err) {
		t.Fatalf("GET: got %v; want a redispool error wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET returned after %v; want at its 100ms deadline", d)
	}
	waitFor(t, func() bool { st := p.Stats(); return st.DestroyedBroken == 1 && st.Shared == 0 })
}

// TestPipelineInlineRandomDeadlines runs one and two goroutines, each
// writing and reading back a key of its own with a random deadline, so
// that most round trips are inline and their contexts end before, during
// and after their I/O: no reply reaches the wrong caller, every error is
// the context's, and no connection is left behind.
func TestPipelineInlineRandomDeadlines(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprintf("Workers=%d", workers), func(t *testing.T) {
			checkNoLeak(t, goleak.IgnoreCurrent())
			s := redistest.StartServer(t)
			p, _ := pipelineOn(t, s, Config{MaxTotal: 4, ClientName: pipeName}, pipeConfig{})
			ctxFor := func(int) (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Duration(rand.IntN(300))*time.Microsecond)
			}
			var badErr atomic.Pointer[error]
			l := startOwnKeyLoad(t, p.Do, workers, ctxFor, func(err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					badErr.CompareAndSwap(nil, &err)
				}
			})
			waitFor(t, func() bool { return l.ops.Load() >= 2000 })
			l.halt()
			if e := badErr.Load(); e != nil {
				t.Errorf("an error other than the context's: %v", *e)
			}
			if l.wrong.Load() != 0 {
				t.Errorf("%d replies reached the wrong caller", l.wrong.Load())
			}
			st := p.Stats()
			if st.Active != 0 {
				t.Errorf("Stats = %+v; want no connection lent out", st)
			}
			// Nothing is in flight now: every connection the pool holds
			// is idle or shared, and the server sees exactly those.
			waitFor(t, func() bool {
				st := p.Stats()
				return s.CountClients(t, isPipeConn) == st.Idle+st.Shared
			})
			t.Logf("%d ops, %d cancelled; %d connections closed mid-command; %+v", l.ops.Load(), l.errs.Load(), st.DestroyedBroken, st)
		})
	}
}
