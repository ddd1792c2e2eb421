package redispool

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a pool's connections and counters. Counters
// count from New and only grow.
type Stats struct {
	MaxTotal int // the configured limit on connections

	// Connections now.
	Active int // borrowed
	Idle   int // open and waiting in the pool
	Shared int // held by Do's auto-pipelining (Config.PipelineConns); Active+Idle+Shared <= MaxTotal

	// Borrows.
	Waiting      int           // borrowers waiting now because MaxTotal are borrowed
	Dialing      int           // borrowers waiting now for a connection being dialed for them (with Sentinel, the query of the Sentinels too); not counted in Active or Idle
	Borrows      int64         // successful borrows
	WaitCount    int64         // borrows that had to wait because MaxTotal were borrowed
	WaitDuration time.Duration // total time borrows spent waiting
	Timeouts     int64         // borrows that gave up with ErrPoolExhausted: BorrowTimeout, their context, or FailFast

	// Connections over the pool's life.
	Created    int64 // connections dialed and set up
	DialErrors int64 // dials (including AUTH, SELECT, CLIENT SETNAME) that failed
	Destroyed  int64 // connections closed, for any reason: the sum of the counters below

	// Connections closed, by reason.
	DestroyedBroken    int64 // failed mid-command: I/O or protocol error, timeout, cancelled context
	DestroyedUnhealthy int64 // failed the borrow check: closed by the server, unexpected data, PING failed
	DestroyedDirty     int64 // left with session state that cannot be undone, or whose reset failed
	DestroyedIdle      int64 // idle longer than MaxConnIdleTime
	DestroyedLifetime  int64 // older than MaxConnLifetime
	DestroyedSurplus   int64 // returned while MaxIdle connections were idle
	DestroyedClosed    int64 // closed by Pool.Close
	DestroyedFailover  int64 // connected to a master the pool has left (Sentinel), or that replied READONLY or MASTERDOWN
	Abandoned          int64 // borrowed longer than AbandonedTimeout and reclaimed

	// Sentinel.
	MasterChanges int64 // times the pool switched to a new master

	// Auto-pipelining (Config.PipelineConns).
	PipelinedCommands int64 // commands Do wrote on a shared connection
	PipelineBatches   int64 // writes on shared connections; PipelinedCommands/PipelineBatches is the mean batch
	// PipelineBatchSizes counts the writes by the number of commands in
	// them: [0] those of 1 command, [i] those of 2^(i-1)+1 to 2^i, and
	// the last every batch of more than 2^(PipelineBatchBuckets-2). Use
	// PipelineBatchSizeBound for a bucket's upper bound.
	PipelineBatchSizes [PipelineBatchBuckets]int64
}

// PipelineBatchBuckets is the number of buckets of
// Stats.PipelineBatchSizes.
const PipelineBatchBuckets = 10

// PipelineBatchSizeBound returns the largest batch that bucket i of
// Stats.PipelineBatchSizes counts: 1, 2, 4, ... 256; and 0 for the last
// bucket, which has no bound.
func PipelineBatchSizeBound(i int) int {
	if i >= PipelineBatchBuckets-1 {
		return 0
	}
	return 1 << i
}

// batchBucket is the bucket of Stats.PipelineBatchSizes that counts a
// batch of n >= 1 commands.
func batchBucket(n int) int {
	return min(bits.Len(uint(n-1)), PipelineBatchBuckets-1)
}

// Stats returns a snapshot of the pool's statistics.
func (p *Pool) Stats() Stats {
	c := &p.stats
	s := Stats{
		MaxTotal:           p.cfg.MaxTotal,
		Waiting:            int(c.waiting.Load()),
		Dialing:            int(c.dialing.Load()),
		Borrows:            c.borrows.Load(),
		WaitCount:          c.waitCount.Load(),
		WaitDuration:       time.Duration(c.waitNanos.Load()),
		Timeouts:           c.timeouts.Load(),
		Created:            c.created.Load(),
		DialErrors:         c.dialErrors.Load(),
		DestroyedBroken:    c.destroyed[reasonBroken].Load(),
		DestroyedUnhealthy: c.destroyed[reasonUnhealthy].Load(),
		DestroyedDirty:     c.destroyed[reasonDirty].Load(),
		DestroyedIdle:      c.destroyed[reasonIdle].Load(),
		DestroyedLifetime:  c.destroyed[reasonLifetime].Load(),
		DestroyedSurplus:   c.destroyed[reasonSurplus].Load(),
		DestroyedClosed:    c.destroyed[reasonPoolClosed].Load(),
		DestroyedFailover:  c.destroyed[reasonFailover].Load(),
		Abandoned:          c.destroyed[reasonAbandoned].Load(),
		MasterChanges:      c.masterChanges.Load(),
	}
	if p.pipes != nil {
		s.PipelinedCommands = p.pipes.commands.Load()
		s.PipelineBatches = p.pipes.batches.Load()
		for i := range s.PipelineBatchSizes {
			s.PipelineBatchSizes[i] = p.pipes.sizes[i].Load()
		}
	}
	s.Destroyed = s.DestroyedBroken + s.DestroyedUnhealthy + s.DestroyedDirty +
		s.DestroyedIdle + s.DestroyedLifetime + s.DestroyedSurplus + s.DestroyedClosed +
		s.DestroyedFailover + s.Abandoned
	// open counts connections from dial to close and never exceeds the
	// engine's cap, so Active+Idle = max(open, active) <= MaxTotal even
	// though the two are read at different instants.
	p.mu.Lock()
	active := int64(p.active)
	p.mu.Unlock()
	open := c.open.Load()
	s.Idle = int(max(open-active, 0))
	if p.pipes != nil {
		// Shared connections are lent out by the borrow path's count.
		sh := p.pipes.shared.Load()
		s.Shared = int(sh)
		active = max(active-sh, 0)
	}
	s.Active = int(active)
	return s
}

// counters are the pool's live statistics, updated atomically.
type counters struct {
	open    atomic.Int64 // dialed and not yet closed
	waiting atomic.Int64 // in the queue of waiters now
	dialing atomic.Int64 // borrowers in MakeObject now

	borrows, waitCount, waitNanos, timeouts atomic.Int64
	created, dialErrors                     atomic.Int64
	destroyed                               [numReasons]atomic.Int64
	masterChanges                           atomic.Int64
}

// destroyReason is why a connection was closed.
type destroyReason uint8

const (
	reasonNone destroyReason = iota
	reasonBroken
	reasonUnhealthy
	reasonDirty
	reasonIdle
	reasonLifetime
	reasonSurplus
	reasonPoolClosed
	reasonFailover
	reasonAbandoned
	numReasons
)

func (r destroyReason) String() string {
	return [...]string{"none", "broken", "unhealthy", "dirty", "idle", "lifetime", "surplus", "closed", "failover", "abandoned"}[r]
}
