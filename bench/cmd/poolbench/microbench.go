package main

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/redispool/redispool/bench/internal/micro"
)

// microResult is one subject's borrow-and-return cost at one
// concurrency, the median over rounds.
type microResult struct {
	name    string
	conc    int
	nsPerOp []float64 // per round
	allocs  int64
	bytes   int64
	failed  bool
}

func (m microResult) ns() float64 { return median(m.nsPerOp) }

// measureMicro runs the network-free micro-benchmark through
// testing.Benchmark, subjects interleaved within each round.
func measureMicro(concs []int, rounds int, benchtime time.Duration, progress func(string)) ([][]microResult, error) {
	testing.Init()
	if err := flag.CommandLine.Set("test.benchtime", benchtime.String()); err != nil {
		return nil, err
	}
	out := make([][]microResult, len(concs))
	for i, conc := range concs {
		out[i] = make([]microResult, len(micro.Subjects))
		for j, s := range micro.Subjects {
			out[i][j] = microResult{name: s.Name, conc: conc}
		}
	}
	for round := range rounds {
		for i, conc := range concs {
			for k := range micro.Subjects {
				j := (round + k) % len(micro.Subjects) // rotate, as the end-to-end rounds do
				r := testing.Benchmark(micro.Benchmark(micro.Subjects[j], conc))
				m := &out[i][j]
				if r.N == 0 {
					m.failed = true
					continue
				}
				m.nsPerOp = append(m.nsPerOp, float64(r.T.Nanoseconds())/float64(r.N))
				m.allocs, m.bytes = r.AllocsPerOp(), r.AllocedBytesPerOp()
			}
		}
		progress(fmt.Sprintf("micro-benchmark: round %d/%d", round+1, rounds))
	}
	return out, nil
}
