package main

import (
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strings"
	"time"
)

// A histogram records latencies in fixed memory. Each worker of a
// benchmark fills its own, and they are merged at the end.
//
// Quantiles come from log-linear buckets, as in HdrHistogram: values
// below 256ns are exact, and above that every power-of-two range is split
// into 128 buckets, so a quantile is off by less than 1%. The text
// histogram counts exactly, in 1-2-5 steps.
type histogram struct {
	n        int64
	sum      time.Duration
	min, max time.Duration
	buckets  [numBuckets]int64
	steps    [numSteps + 1]int64 // steps[i]: values <= steps[i] and above the step before; the last: above all
}

const (
	subBits    = 7
	subCount   = 1 << subBits // buckets per power of two
	maxShift   = 40 - subBits - 1
	numBuckets = (maxShift+1)*subCount + subCount // covers up to 2^40ns, about 18 minutes
)

// steps are the upper bounds of the text histogram's rows: 1µs, 2µs,
// 5µs, 10µs ... 500s.
var steps = func() (s [numSteps]time.Duration) {
	d := time.Microsecond
	for i := 0; i < numSteps; i += 3 {
		s[i], s[i+1], s[i+2] = d, 2*d, 5*d
		d *= 10
	}
	return s
}()

const numSteps = 3 * 9

func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	if shift > maxShift {
		return numBuckets - 1
	}
	return shift*subCount + int(v>>shift)
}

// bucketMax is the largest value that falls in bucket i.
func bucketMax(i int) uint64 {
	if i < 2*subCount {
		return uint64(i)
	}
	shift := i/subCount - 1
	lo := uint64(i-shift*subCount) << shift
	return lo + 1<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
	h.sum += d
	h.buckets[bucketOf(uint64(d))]++
	h.steps[sort.Search(len(steps), func(i int) bool { return d <= steps[i] })]++
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
	for i, c := range o.steps {
		h.steps[i] += c
	}
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// quantile returns the latency that a fraction q of the values do not
// exceed: the middle of the bucket that holds the value of that rank,
// kept within the smallest and largest values recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen int64
	for i, c := range h.buckets {
		seen += c
		if seen >= rank {
			lo := uint64(0)
			if i > 0 {
				lo = bucketMax(i-1) + 1
			}
			mid := time.Duration(lo + (bucketMax(i)-lo)/2)
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

// percentiles are the quantiles reports show.
var percentiles = []struct {
	name string
	q    float64
}{
	{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p99.9", 0.999},
}

// histRow is one row of the text histogram.
type histRow struct {
	le    time.Duration // upper bound; 0 for the row above every step
	count int64
}

// rows returns the text histogram's rows, from the first step holding a
// value to the last.
func (h *histogram) rows() []histRow {
	first, last := -1, -1
	for i, c := range h.steps {
		if c > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil
	}
	var rows []histRow
	for i := first; i <= last; i++ {
		r := histRow{count: h.steps[i]}
		if i < len(steps) {
			r.le = steps[i]
		}
		rows = append(rows, r)
	}
	return rows
}

// writeText prints the percentiles and a bar chart of the distribution.
func (h *histogram) writeText(w io.Writer) {
	if h.n == 0 {
		fmt.Fprintln(w, "  no successful operations")
		return
	}
	for _, p := range percentiles {
		fmt.Fprintf(w, "  %-6s %9s\n", p.name, fmtDur(h.quantile(p.q)))
	}
	fmt.Fprintf(w, "  %-6s %9s\n", "max", fmtDur(h.max))
	fmt.Fprintf(w, "  %-6s %9s\n", "mean", fmtDur(h.mean()))
	fmt.Fprintln(w)

	rows := h.rows()
	var top int64
	for _, r := range rows {
		top = max(top, r.count)
	}
	const width = 40
	var cum int64
	for _, r := range rows {
		label := "> " + steps[len(steps)-1].String()
		if r.le > 0 {
			label = "<= " + r.le.String()
		}
		cum += r.count
		fmt.Fprintf(w, "  %9s %-*s %11s %6.2f%% %7.2f%%\n", label, width, bar(r.count, top, width),
			fmtInt(r.count), pct(r.count, h.n), pct(cum, h.n))
	}
}

// bar draws count/top of width cells with eighth-block precision; any
// non-zero count shows at least a sliver.
func bar(count, top int64, width int) string {
	if top == 0 || count == 0 {
		return ""
	}
	eighths := int(count * int64(width) * 8 / top)
	eighths = max(eighths, 1)
	partial := []string{"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"}
	return strings.Repeat("█", eighths/8) + partial[eighths%8]
}

func pct(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// fmtDur formats a duration with three significant digits: 812ns,
// 41.3µs, 1.25ms, 2.00s.
func fmtDur(d time.Duration) string {
	sig := func(v float64, unit string) string {
		switch {
		case v >= 99.95:
			return fmt.Sprintf("%.0f%s", v, unit)
		case v >= 9.995:
			return fmt.Sprintf("%.1f%s", v, unit)
		default:
			return fmt.Sprintf("%.2f%s", v, unit)
		}
	}
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return sig(float64(d)/1e3, "µs")
	case d < time.Second:
		return sig(float64(d)/1e6, "ms")
	default:
		return sig(d.Seconds(), "s")
	}
}

// fmtInt formats n with thousands separators: 1,234,567.
func fmtInt(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
