package main

import (
	"strings"
	"testing"

	"github.com/redispool/redispool/bench/internal/micro"
)

// microReport is a report with one micro-benchmark row in which
// redispool borrows and returns at ratio times redigo's rate.
func microReport(quick bool, ratio float64) *report {
	row := []microResult{
		{name: micro.Redigo.Name, conc: 16, nsPerOp: []float64{300, 300, 300}},
		{name: micro.Baseline.Name, conc: 16, nsPerOp: []float64{400, 400, 400}},
		{name: micro.Redispool.Name, conc: 16, nsPerOp: []float64{300 / ratio, 300 / ratio, 300 / ratio}},
	}
	return &report{opts: options{quick: quick}, micro: [][]microResult{row}}
}

func TestQuickRunCallsNoisyTargetsInformational(t *testing.T) {
	var b strings.Builder
	microReport(true, 1.1).write(&b) // below the 1.25× target
	out := b.String()
	if strings.Contains(out, "FAIL") {
		t.Errorf("a -quick report says FAIL for a target it cannot resolve:\n%s", out)
	}
	if !strings.Contains(out, "not met (informational)") {
		t.Errorf("a -quick report does not call the missed target informational:\n%s", out)
	}
}

func TestFullRunGivesVerdicts(t *testing.T) {
	var b strings.Builder
	microReport(false, 1.1).write(&b)
	if out := b.String(); !strings.Contains(out, "**FAIL**") || strings.Contains(out, "informational") {
		t.Errorf("a full report with a missed target: want **FAIL** and no informational:\n%s", out)
	}
	b.Reset()
	microReport(false, 1.5).write(&b)
	if out := b.String(); strings.Contains(out, "FAIL") {
		t.Errorf("a full report with every target met says FAIL:\n%s", out)
	}
}
