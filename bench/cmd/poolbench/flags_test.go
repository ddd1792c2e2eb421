package main

import (
	"testing"
	"time"
)

func TestQuickKeepsExplicitFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-rounds", "7"})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if o.rounds != 7 {
		t.Errorf("rounds = %d; want 7 (set explicitly)", o.rounds)
	}
	if o.duration != 30*time.Millisecond {
		t.Errorf("duration = %v; want 30ms (the -quick default)", o.duration)
	}
}

func TestParseFlagsRejectsUnknownNames(t *testing.T) {
	for _, args := range [][]string{
		{"-workloads", "GET,HGET"},
		{"-contenders", "redispool,jedis"},
		{"-conc", "16,x"},
		{"-skip", "everything"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q): got no error; want one", args)
		}
	}
}
