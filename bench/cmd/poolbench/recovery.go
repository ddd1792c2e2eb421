package main

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redispool/redispool/bench/internal/contender"
	"github.com/redispool/redispool/bench/internal/redisserver"
)

const (
	recoveryWorkers = contender.PoolSize // goroutines issuing commands
	recoveryBackoff = time.Millisecond   // a worker's pause after a failed command
	recoveryOutage  = 200 * time.Millisecond
	recoveryOpLimit = time.Second // each command's context deadline
	recoveryGiveUp  = 10 * time.Second
)

// recoveryResult is one contender's recovery, over several restarts.
type recoveryResult struct {
	name string

	// Under load: workers kept sending through the outage.
	loaded        []time.Duration // server accepting again → first success
	loadedFailsOK []int           // commands that failed after the server was back

	// Idle restart: the server restarted while the pool sat idle with
	// PoolSize connections, then every worker sent one command.
	idle      []time.Duration // server accepting again → first success
	idleFails []int           // commands that failed before each worker's first success
}

// measureRecovery restarts srv under each contender reps times, in both
// scenarios.
func measureRecovery(ctx context.Context, srv *redisserver.Server, cs []contender.Contender, reps int, progress func(string)) ([]recoveryResult, error) {
	var out []recoveryResult
	for _, c := range cs {
		rr := recoveryResult{name: c.Name}
		for rep := range reps {
			d, fails, err := recoverUnderLoad(ctx, srv, c)
			if err != nil {
				return nil, fmt.Errorf("recovery under load, %s: %w", c.Name, err)
			}
			rr.loaded = append(rr.loaded, d)
			rr.loadedFailsOK = append(rr.loadedFailsOK, fails)

			d, fails, err = recoverIdle(ctx, srv, c)
			if err != nil {
				return nil, fmt.Errorf("recovery after idle restart, %s: %w", c.Name, err)
			}
			rr.idle = append(rr.idle, d)
			rr.idleFails = append(rr.idleFails, fails)
			progress(fmt.Sprintf("recovery %s: %d/%d", c.Name, rep+1, reps))
		}
		out = append(out, rr)
	}
	return out, nil
}

// restart kills srv, waits for outage, starts it again and returns the
// moment it accepted a connection again, found by dialing in a tight
// loop.
func restart(ctx context.Context, srv *redisserver.Server, outage time.Duration) (time.Time, error) {
	srv.Kill()
	time.Sleep(outage)
	if err := srv.StartProcess(); err != nil {
		return time.Time{}, err
	}
	deadline := time.Now().Add(recoveryGiveUp)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", srv.Addr, 100*time.Millisecond)
		if err == nil {
			back := time.Now()
			c.Close()
			return back, nil
		}
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
	}
	return time.Time{}, fmt.Errorf("server did not accept connections within %v of starting", recoveryGiveUp)
}

type event struct {
	end time.Time
	ok  bool
}

// recoverUnderLoad keeps recoveryWorkers workers sending PING (pausing
// recoveryBackoff after a failure), kills the server, restarts it after
// recoveryOutage and returns the time from the server accepting
// connections again to the first successful command, and how many
// commands failed after that moment.
func recoverUnderLoad(ctx context.Context, srv *redisserver.Server, c contender.Contender) (time.Duration, int, error) {
	if err := srv.Start(ctx); err != nil {
		return 0, 0, err
	}
	cl, err := c.New(ctx, srv.Addr, recoveryWorkers)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()

	var (
		stop   atomic.Bool
		wg     sync.WaitGroup
		events = make([][]event, recoveryWorkers)
		okAny  = make(chan struct{}, recoveryWorkers) // a success after the restart began
		armed  atomic.Bool
	)
	for i := range recoveryWorkers {
		op := cl.Op(contender.Ping, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				octx, cancel := context.WithTimeout(ctx, recoveryOpLimit)
				err := op(octx)
				cancel()
				now := time.Now()
				if armed.Load() {
					events[i] = append(events[i], event{end: now, ok: err == nil})
					if err == nil {
						select {
						case okAny <- struct{}{}:
						default:
						}
					}
				}
				if err != nil {
					time.Sleep(recoveryBackoff)
				}
			}
		}()
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()

	time.Sleep(50 * time.Millisecond) // steady load, full pool
	srv.Kill()
	time.Sleep(recoveryOutage) // workers fail and back off
	armed.Store(true)
	back, err := restart(ctx, srv, 0)
	if err != nil {
		return 0, 0, err
	}
	// Wait for a success that ended after the server came back.
	select {
	case <-okAny:
	case <-time.After(recoveryGiveUp):
		return 0, 0, fmt.Errorf("no successful command within %v of the server accepting connections", recoveryGiveUp)
	}
	time.Sleep(10 * time.Millisecond) // let the other workers recover too
	stop.Store(true)
	wg.Wait()
	var first time.Time
	fails := 0
	for _, evs := range events {
		for _, e := range evs {
			switch {
			case e.end.Before(back):
			case !e.ok:
				fails++
			case first.IsZero() || e.end.Before(first):
				first = e.end
			}
		}
	}
	if first.IsZero() {
		// The success that was signalled ended before the probe saw the
		// server: it counts as immediate.
		return 0, fails, nil
	}
	return first.Sub(back), fails, nil
}

// recoverIdle fills the pool with recoveryWorkers idle connections,
// restarts the server while they sit idle, then has each worker send
// PING until one succeeds. It returns the time from the server accepting
// connections again to the first successful command, and the number of
// failed commands: stale connections handed to the application.
func recoverIdle(ctx context.Context, srv *redisserver.Server, c contender.Contender) (time.Duration, int, error) {
	if err := srv.Start(ctx); err != nil {
		return 0, 0, err
	}
	cl, err := c.New(ctx, srv.Addr, recoveryWorkers)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()

	ops := make([]func(context.Context) error, recoveryWorkers)
	for i := range ops {
		ops[i] = cl.Op(contender.Ping, i)
	}
	// Fill the pool: all workers at once, a few times.
	if err := parallelOnce(ops, func(op func(context.Context) error) error {
		for range 20 {
			if err := op(ctx); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("warm-up: %w", err)
	}

	back, err := restart(ctx, srv, 50*time.Millisecond)
	if err != nil {
		return 0, 0, err
	}
	var (
		mu    sync.Mutex
		first time.Time
		fails int
	)
	err = parallelOnce(ops, func(op func(context.Context) error) error {
		deadline := time.Now().Add(recoveryGiveUp)
		for time.Now().Before(deadline) {
			octx, cancel := context.WithTimeout(ctx, recoveryOpLimit)
			err := op(octx)
			cancel()
			now := time.Now()
			mu.Lock()
			if err == nil && (first.IsZero() || now.Before(first)) {
				first = now
			}
			if err != nil {
				fails++
			}
			mu.Unlock()
			if err == nil {
				return nil
			}
			time.Sleep(recoveryBackoff)
		}
		return fmt.Errorf("no success within %v", recoveryGiveUp)
	})
	if err != nil {
		return 0, 0, err
	}
	return first.Sub(back), fails, nil
}

// parallelOnce runs fn once for each op, concurrently, and returns the
// first error.
func parallelOnce(ops []func(context.Context) error, fn func(func(context.Context) error) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(op); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func medianDuration(ds []time.Duration) time.Duration {
	f := make([]float64, len(ds))
	for i, d := range ds {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}

func minMax(ds []time.Duration) (time.Duration, time.Duration) {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[0], s[len(s)-1]
}

func medianInt(v []int) float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return median(f)
}
