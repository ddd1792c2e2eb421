package main

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 100, 1000, 12345, 1e6, 3e9, 1 << 40} {
		b := bucketOf(v)
		mid := uint64(bucketMid(b))
		if v < 32 && mid != v {
			t.Errorf("bucketMid(bucketOf(%d)) = %d; want %d exactly", v, mid, v)
		}
		if diff := float64(mid) - float64(v); diff > 0.035*float64(v)+1 || -diff > 0.035*float64(v)+1 {
			t.Errorf("bucketMid(bucketOf(%d)) = %d; want within 3.5%%", v, mid)
		}
		if b > 0 && bucketOf(v) < bucketOf(v-1) {
			t.Errorf("bucketOf not monotonic at %d", v)
		}
	}
}

func TestQuantileMatchesSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h hist
	vals := make([]time.Duration, 10000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(50*time.Microsecond))
		h.record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.quantile(q)
		if d := float64(got-want) / float64(want); d > 0.04 || d < -0.04 {
			t.Errorf("quantile(%v) = %v; want %v within 4%%", q, got, want)
		}
	}
}
