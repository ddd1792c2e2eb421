// Package parallel runs a benchmark's operation from a given number of
// goroutines.
package parallel

import (
	"runtime"
	"sync/atomic"
	"testing"
)

// Goroutines is the number of goroutines Run uses for conc: conc itself
// when GOMAXPROCS divides it (b.RunParallel starts a multiple of
// GOMAXPROCS), else the next multiple of GOMAXPROCS.
func Goroutines(conc int) int {
	if conc <= 1 {
		return 1
	}
	procs := runtime.GOMAXPROCS(0)
	return (conc + procs - 1) / procs * procs
}

// Run measures b.N operations spread over Goroutines(conc) goroutines,
// with b.RunParallel and b.SetParallelism when conc > 1 and a plain loop
// when conc is 1. newOp is called once per goroutine, before the timer
// starts for conc 1, with the goroutine's index in [0, Goroutines(conc)),
// and returns that goroutine's operation. The first error an operation
// returns fails the benchmark.
func Run(b *testing.B, conc int, newOp func(worker int) func() error) {
	b.ReportAllocs()
	if conc <= 1 {
		op := newOp(0)
		b.ResetTimer()
		for range b.N {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((conc + procs - 1) / procs)
	var next atomic.Int32
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		op := newOp(int(next.Add(1) - 1))
		for pb.Next() {
			if err := op(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
