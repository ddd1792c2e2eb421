package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redispool/redispool/redistest"
)

// TestSentinelURL runs stats and bench with a redis+sentinel:// URL, and
// bench across a planned failover: the pool follows the master, and the
// report shows the current master and the change.
func TestSentinelURL(t *testing.T) {
	t.Parallel()
	d := redistest.StartSentinel(t, redistest.SentinelOptions{})
	url := "redis+sentinel://" + strings.Join(d.SentinelAddrs(), ",") + "/" + d.MasterName()
	master := d.MasterAddr(t)

	r := runCLI(t, "--url", url, "stats", "-d", "200ms", "-c", "4")
	wantCode(t, r, exitOK)
	contains(t, "stats", r.stdout, `Sentinel master "mymaster" via `+d.Sentinels[0].Addr(), " "+master+", 0 master changes\n")

	// Kill the master during a bench: the commands in flight fail, and the
	// report shows when.
	done := make(chan result)
	go func() {
		done <- runCLI(t, "--url", url, "--borrow-timeout", "10s", "bench", "-d", "5s", "-c", "8", "--mix", "set=1")
	}()
	time.Sleep(time.Second)
	d.Node(master).Kill()
	second := d.WaitMaster(t, master)
	r = <-done
	wantCode(t, r, exitError)
	if !regexp.MustCompile(`errors from [0-9.]+s to [0-9.]+s after the start: a window of `).MatchString(r.stdout) ||
		!regexp.MustCompile(`longest stall: a client completed nothing for [0-9.]+m?s, from `).MatchString(r.stdout) {
		t.Errorf("bench across a crash does not show the error window and the stall:\n%s", r.stdout)
	}
	contains(t, "bench", r.stdout, " "+second+", 1 master changes\n")
	t.Logf("bench across kill -9 of the master:\n%s", r.stdout)

	// A planned failover: no errors.
	go func() {
		done <- runCLI(t, "--url", url, "--borrow-timeout", "10s", "bench", "-d", "4s", "-c", "8", "--mix", "set=1")
	}()
	d.Failover(t)
	third := d.WaitMaster(t, second)
	r = <-done
	wantCode(t, r, exitOK)
	contains(t, "bench", r.stdout, " "+third+", 1 master changes\n", ", 0 errors")
}
