package redispool

import (
	"context"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
	"go.uber.org/goleak"
)

func TestBatchBucket(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {8, 3}, {9, 4}, {16, 4}, {17, 5},
		{128, 7}, {129, 8}, {256, 8}, {257, 9}, {1 << 20, 9},
	} {
		if got := batchBucket(tc.n); got != tc.want {
			t.Errorf("batchBucket(%d) = %d; want %d", tc.n, got, tc.want)
		}
		b := batchBucket(tc.n)
		if hi := PipelineBatchSizeBound(b); hi != 0 && tc.n > hi {
			t.Errorf("batch of %d in bucket %d, whose bound is %d", tc.n, b, hi)
		}
		if b > 0 && tc.n <= PipelineBatchSizeBound(b-1) {
			t.Errorf("batch of %d in bucket %d; it fits the one below, bound %d", tc.n, b, PipelineBatchSizeBound(b-1))
		}
	}
	if got := PipelineBatchSizeBound(PipelineBatchBuckets - 1); got != 0 {
		t.Errorf("PipelineBatchSizeBound(last) = %d; want 0 (no bound)", got)
	}
}

func TestNoteBatchDoesNotAllocate(t *testing.T) {
	pl := &pipeline{}
	if n := testing.AllocsPerRun(100, func() { pl.noteBatch(7) }); n != 0 {
		t.Errorf("noteBatch allocates %v times; want 0", n)
	}
}

// TestStatsPipelineBatchSizes holds the shared connection's lend until
// five commands are queued, so that they go out in one write: Stats
// counts one batch of five, then one of one for an inline round trip.
func TestStatsPipelineBatchSizes(t *testing.T) {
	checkNoLeak(t, goleak.IgnoreCurrent())
	s := redistest.StartServer(t)
	p := newTestPool(t, Config{Addr: s.Addr()})
	p.pipes.close()
	h := &gatedHost{pipeHost: poolHost{p}, gate: make(chan struct{})}
	p.pipes = newPipeline(h, pipeConfig{readTimeout: 5 * time.Second, writeTimeout: 5 * time.Second}) // closed by p.Close

	const queued = 5
	errs := make(chan error, queued)
	for range queued {
		go func() {
			_, err := p.Do(context.Background(), "INCR", "n")
			errs <- err
		}()
	}
	waitFor(t, func() bool { return p.pipes.pipes[0].nq.Load() == queued })
	if st := p.Stats(); st.PipelinedCommands != 0 || st.PipelineBatches != 0 {
		t.Errorf("before the write: PipelinedCommands %d, PipelineBatches %d; want 0, 0: nothing written yet", st.PipelinedCommands, st.PipelineBatches)
	}
	close(h.gate)
	for range queued {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var want [PipelineBatchBuckets]int64
	want[batchBucket(queued)] = 1
	if st := p.Stats(); st.PipelinedCommands != queued || st.PipelineBatches != 1 || st.PipelineBatchSizes != want {
		t.Fatalf("Stats: PipelinedCommands %d, PipelineBatches %d, PipelineBatchSizes %v; want %d, 1, %v",
			st.PipelinedCommands, st.PipelineBatches, st.PipelineBatchSizes, queued, want)
	}

	// The pipe is idle now: a lone caller does its own round trip, a
	// batch of one.
	waitFor(t, func() bool {
		p.pipes.pipes[0].mu.Lock()
		defer p.pipes.pipes[0].mu.Unlock()
		return p.pipes.pipes[0].state == pipeIdle
	})
	if _, err := p.Do(context.Background(), "GET", "n"); err != nil {
		t.Fatal(err)
	}
	want[0]++
	if st := p.Stats(); st.PipelinedCommands != queued+1 || st.PipelineBatches != 2 || st.PipelineBatchSizes != want {
		t.Fatalf("Stats: PipelinedCommands %d, PipelineBatches %d, PipelineBatchSizes %v; want %d, 2, %v",
			st.PipelinedCommands, st.PipelineBatches, st.PipelineBatchSizes, queued+1, want)
	}
}
