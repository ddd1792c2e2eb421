package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
)

func TestFormatReply(t *testing.T) {
	ten := make([]any, 10)
	for i := range ten {
		ten[i] = int64(i)
	}
	tests := []struct {
		name  string
		reply any
		want  string
	}{
		{"status", "OK", "OK\n"},
		{"bulk", []byte("hello"), "\"hello\"\n"},
		{"empty bulk", []byte(""), "\"\"\n"},
		{"escapes", []byte("a\"b\\c\n\r\t\a\b"), `"a\"b\\c\n\r\t\a\b"` + "\n"},
		{"binary and UTF-8 as bytes", []byte("\x00é\x7f"), `"\x00\xc3\xa9\x7f"` + "\n"},
		{"integer", int64(-3), "(integer) -3\n"},
		{"nil", nil, "(nil)\n"},
		{"error", redis.Error("ERR wrong"), "(error) ERR wrong\n"},
		{"empty array", []any{}, "(empty array)\n"},
		{"array", []any{[]byte("a"), int64(2), nil}, "1) \"a\"\n2) (integer) 2\n3) (nil)\n"},
		{"nested", []any{int64(1), []any{int64(2), []any{[]byte("x"), []byte("y")}}, []any{}},
			"1) (integer) 1\n2) 1) (integer) 2\n   2) 1) \"x\"\n      2) \"y\"\n3) (empty array)\n"},
		{"ten elements pad the index", ten,
			" 1) (integer) 0\n 2) (integer) 1\n 3) (integer) 2\n 4) (integer) 3\n 5) (integer) 4\n" +
				" 6) (integer) 5\n 7) (integer) 6\n 8) (integer) 7\n 9) (integer) 8\n10) (integer) 9\n"},
		{"nested under a padded index", append(slices.Clone(ten[:9]), []any{int64(1), int64(2)}),
			" 1) (integer) 0\n 2) (integer) 1\n 3) (integer) 2\n 4) (integer) 3\n 5) (integer) 4\n" +
				" 6) (integer) 5\n 7) (integer) 6\n 8) (integer) 7\n 9) (integer) 8\n10) 1) (integer) 1\n    2) (integer) 2\n"},
		{"exec with an error inside", []any{"OK", redis.Error("WRONGTYPE x")}, "1) OK\n2) (error) WRONGTYPE x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatReply(tt.reply, ""); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"get=80,set=20", "get=80,set=20"},
		{" GET = 1 , set=0,ping=2", ""}, // spaces inside a pair are not trimmed
		{"GET=1, set=0,ping=2", "get=1,ping=2"},
		{"multi=1", "multi=1"},
		{"pipeline=3,incr=1", "pipeline=3,incr=1"},
		{"get", ""},
		{"get=x", ""},
		{"get=-1", ""},
		{"get=0,set=0", ""},
		{"get=1,get=1", ""},
		{"del=1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		m, err := parseMix(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("parseMix(%q) = %v; want an error", tt.in, m)
		case tt.want != "" && err != nil:
			t.Errorf("parseMix(%q): %v", tt.in, err)
		case tt.want != "" && m.String() != tt.want:
			t.Errorf("parseMix(%q) = %v; want %v", tt.in, m, tt.want)
		}
	}
}

func TestMixPickFollowsWeights(t *testing.T) {
	m, err := parseMix("get=3,set=1,ping=2")
	if err != nil {
		t.Fatal(err)
	}
	var got []op
	for n := range m.total() {
		got = append(got, m.pick(n))
	}
	want := []op{opGet, opGet, opGet, opSet, opPing, opPing}
	if !slices.Equal(got, want) {
		t.Errorf("picks = %v; want %v", got, want)
	}
}

func TestHistogramBuckets(t *testing.T) {
	prevMax := uint64(0)
	for i := 1; i < numBuckets; i++ {
		lo, hi := bucketMax(i-1)+1, bucketMax(i)
		if lo != prevMax+1 && i > 1 {
			t.Fatalf("bucket %d starts at %d; want %d", i, lo, prevMax+1)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d], but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if w := hi - lo + 1; w > 1 && float64(w)/float64(lo) > 1.0/subCount {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/%d of its values", i, lo, hi, subCount)
		}
		prevMax = hi
	}
	if got := bucketOf(1 << 62); got != numBuckets-1 {
		t.Errorf("bucketOf(2^62) = %d; want the last bucket, %d", got, numBuckets-1)
	}
}

func TestHistogramQuantilesWithin1Percent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, merged histogram
	var parts [3]histogram
	var all []time.Duration
	for i := range 100000 {
		// Log-normal-ish latencies from about 10µs to 100ms.
		d := time.Duration(10e3 * (1 + r.ExpFloat64()*r.ExpFloat64()*50))
		all = append(all, d)
		h.record(d)
		parts[i%3].record(d)
	}
	for i := range parts {
		merged.merge(&parts[i])
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := all[max(int(q*float64(len(all)))-1, 0)]
		for name, h := range map[string]*histogram{"recorded": &h, "merged": &merged} {
			got := h.quantile(q)
			if diff := float64(got-exact) / float64(exact); diff < -0.01 || diff > 0.01 {
				t.Errorf("%s: quantile(%v) = %v; want %v within 1%%", name, q, got, exact)
			}
		}
	}
	if h.min != all[0] || h.max != all[len(all)-1] || merged.min != h.min || merged.max != h.max {
		t.Errorf("min, max = %v, %v (merged %v, %v); want %v, %v", h.min, h.max, merged.min, merged.max, all[0], all[len(all)-1])
	}
	if h.n != merged.n || h.sum != merged.sum {
		t.Errorf("merged n, sum = %d, %v; want %d, %v", merged.n, merged.sum, h.n, h.sum)
	}
}

func TestHistogramText(t *testing.T) {
	var h histogram
	for range 6 {
		h.record(150 * time.Microsecond)
	}
	h.record(200 * time.Microsecond) // on a bound: counts in its row
	h.record(3 * time.Millisecond)
	var b strings.Builder
	h.writeText(&b)
	got := b.String()
	for _, want := range []string{
		"  p50        150µs\n",
		"  max       3.00ms\n",
		"   <= 200µs ████████████████████████████████████████           7  87.50%   87.50%\n",
		"   <= 500µs                                                    0   0.00%   87.50%\n",
		"     <= 5ms █████▋                                             1  12.50%  100.00%\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("histogram text does not contain %q:\n%s", want, got)
		}
	}
	if rows := h.rows(); len(rows) != 5 || rows[0].le != 200*time.Microsecond || rows[4].le != 5*time.Millisecond {
		t.Errorf("rows = %v; want 200µs to 5ms", rows)
	}

	var empty histogram
	b.Reset()
	empty.writeText(&b)
	if !strings.Contains(b.String(), "no successful operations") {
		t.Errorf("empty histogram printed %q", b.String())
	}
}

func TestFmtDurAndInt(t *testing.T) {
	for d, want := range map[time.Duration]string{
		812:                     "812ns",
		41300:                   "41.3µs",
		999 * time.Microsecond:  "999µs",
		1250 * time.Microsecond: "1.25ms",
		2 * time.Second:         "2.00s",
		150 * time.Second:       "150s",
	} {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%d) = %q; want %q", d, got, want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 123456789: "123,456,789"} {
		if got := fmtInt(n); got != want {
			t.Errorf("fmtInt(%d) = %q; want %q", n, got, want)
		}
	}
}

// The progress line is redrawn in place: wider than the terminal, it
// would wrap and scroll the screen at every redraw.
func TestProgressLineFitsTheTerminal(t *testing.T) {
	busy := redispool.Stats{Active: 1000, Idle: 1000, WaitCount: 123_456_789, Timeouts: 9_876_543}
	for _, width := range []int{10, 40, 60, 80, 100, 200} {
		for _, done := range []float64{0, 0.5, 1} {
			line := progressLine(width, done, 61*time.Minute, 1_234_567, busy, 12_345_678)
			if n := utf8.RuneCountInString(line); n > width-1 {
				t.Errorf("width %d, done %v: line is %d columns; want at most %d:\n%s", width, done, n, width-1, line)
			}
			if strings.ContainsAny(line, "\r\n") {
				t.Errorf("width %d: line %q holds a line break", width, line)
			}
		}
	}
	line := progressLine(80, 0.5, 1500*time.Millisecond, 52_433, busy, 7)
	contains(t, "80-column line", line, " 50% |", "| 1.5s", "52,433 ops/s", "active 1000", "errors 7")
	line = progressLine(200, 0.5, 1500*time.Millisecond, 52_433, busy, 7)
	contains(t, "200-column line", line, "52,433 ops/s  active 1000  idle 1000  waits 123,456,789  timeouts 9,876,543  errors 7")
}

func TestErrorGroupDropsTheLocalPort(t *testing.T) {
	tests := []struct{ err, want string }{
		{"read tcp 127.0.0.1:56812->127.0.0.1:6379: i/o timeout", "read tcp 127.0.0.1:*->127.0.0.1:6379: i/o timeout"},
		{"read tcp [::1]:40001->[::1]:6379: read: connection reset by peer", "read tcp [::1]:*->[::1]:6379: read: connection reset by peer"},
		{"redispool: dial tcp 127.0.0.1:6379: connect: connection refused", "redispool: dial tcp 127.0.0.1:6379: connect: connection refused"},
	}
	for _, tt := range tests {
		if got := errorGroup(errors.New(tt.err)); got != tt.want {
			t.Errorf("errorGroup(%q) = %q; want %q", tt.err, got, tt.want)
		}
	}
	if got := errorGroup(fmt.Errorf("wrapped: %w", redis.Error("ERR x"))); got != "error reply: wrapped: ERR x" {
		t.Errorf("error reply grouped as %q", got)
	}
}

func TestFormatRaw(t *testing.T) {
	tests := []struct {
		name  string
		reply any
		want  string
	}{
		{"status", "OK", "OK"},
		{"bulk as it is", []byte("a \"b\"\n\x00"), "a \"b\"\n\x00"},
		{"integer", int64(-3), "-3"},
		{"nil", nil, ""},
		{"error", redis.Error("ERR x"), "ERR x\n"},
		{"empty array", []any{}, ""},
		{"nested arrays flatten", []any{int64(1), []any{int64(2), []byte("x")}, redis.Error("ERR no"), nil}, "1\n2\nx\nERR no\n\n"},
	}
	for _, tt := range tests {
		if got := formatRaw(tt.reply); got != tt.want {
			t.Errorf("%s: formatRaw = %q; want %q", tt.name, got, tt.want)
		}
	}
	for _, args := range [][]string{{"info"}, {"INFO", "server"}, {"client", "list"}, {"CLIENT", "INFO"}, {"memory", "doctor"}, {"LATENCY", "DOCTOR"}} {
		if !rawStrings(args) {
			t.Errorf("rawStrings(%q) = false; want true", args)
		}
	}
	for _, args := range [][]string{{"GET", "k"}, {"CLIENT", "GETNAME"}, {"CLUSTER", "NODES", "x"}} {
		if rawStrings(args) {
			t.Errorf("rawStrings(%q) = true; want false", args)
		}
	}
}
