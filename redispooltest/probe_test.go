package redispooltest

import (
	"strings"
	"testing"

	"github.com/redispool/redispool"
	"github.com/redispool/redispool/redistest"
)

func TestProbeLeakViaBridgeAndPipeGet(t *testing.T) {
	srv := redistest.StartServer(t)
	for _, pg := range []bool{false, true} {
		r := &recorder{TB: t}
		p := NewPool(r, redispool.Config{Addr: srv.Addr(), PipelineGet: pg})
		c := p.RedigoPool().Get()
		where := nextLine()
		if _, err := c.Do("MULTI"); err != nil {
			t.Fatal(err)
		}
		c2 := p.Get()
		where2 := nextLine()
		if _, err := c2.Do("CLIENT", "ID"); err != nil {
			t.Fatal(err)
		}
		r.run()
		t.Logf("pg=%v: %q", pg, r.errors)
		if len(r.errors) != 1 || (pg && !strings.Contains(r.errors[0], where)) || (pg && !strings.Contains(r.errors[0], where2)) {
			t.Errorf("pg=%v: got %q; want one report naming %s and %s", pg, r.errors, where, where2)
		}
	}
}
