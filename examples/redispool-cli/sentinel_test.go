package main

import (
	"strings"
	"testing"

	"github.com/redispool/redispool/internal/redistest"
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

	done := make(chan result)
	go func() {
		done <- runCLI(t, "--url", url, "--borrow-timeout", "10s", "bench", "-d", "4s", "-c", "8", "--mix", "set=1")
	}()
	d.Failover(t)
	newMaster := d.WaitMaster(t, master)
	r = <-done
	wantCode(t, r, exitOK)
	contains(t, "bench", r.stdout, " "+newMaster+", 1 master changes\n", ", 0 errors")
}
