package redispool

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/redispool/redispool/redistest"
)

func TestRespGuard(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	for _, tt := range []struct {
		name    string
		stream  string
		wantErr string
	}{
		{"status", "+OK\r\n", ""},
		{"error", "-ERR wrong\r\n", ""},
		{"integer", ":123456789012\r\n", ""},
		{"bulk", "$5\r\nhello\r\n", ""},
		{"bulk with CRLF and $ inside", "$13\r\n$9999999999\r\n\r\n", ""},
		{"nil bulk", "$-1\r\n", ""},
		{"nil array", "*-1\r\n", ""},
		{"1 MiB bulk", "$1048576\r\n" + big + "\r\n", ""},
		{"nested arrays", "*2\r\n*2\r\n:1\r\n$1\r\na\r\n*1\r\n+x\r\n", ""},
		{"many replies", strings.Repeat("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n", 100), ""},
		{"RESP3 map", "%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", ""},
		{"huge bulk", "$2147483647\r\nabc", "bulk length 2147483647"},
		{"endless bulk length", "$" + strings.Repeat("9", 40), "bulk length"},
		{"bulk just over 512MiB", "$536870913\r\n", "bulk length 536870913"},
		{"huge array", "*2147483647\r\n", "array of 2147483647"},
		{"nested arrays adding up", strings.Repeat("*10000000\r\n", 2), "array of 10000000"},
		{"huge map", "%10000000\r\n", "array of 10000000"},
		{"nesting at the limit", strings.Repeat("*1\r\n", maxDepth) + ":1\r\n", ""},
		{"nesting at the limit, then wide", strings.Repeat("*2\r\n", maxDepth-1) + strings.Repeat(":1\r\n", maxDepth), ""},
		{"nesting past the limit", strings.Repeat("*1\r\n", maxDepth+1), "nested deeper than 10000"},
		{"status line of 64 KiB", "+" + strings.Repeat("x", 64<<10) + "\r\n", ""},
		{"error line of 64 KiB", "-ERR " + strings.Repeat("x", 64<<10) + "\r\n", ""},
		{"integer line too long", ":" + strings.Repeat("1", maxLine+1), "line longer than"},
		{"bulk header too long", "$5" + strings.Repeat("x", maxLine), "line longer than"},
		{"bulk header of signs", "$" + strings.Repeat("-", maxLine+1), "line longer than"},
		{"unknown type line too long", "?" + strings.Repeat("x", maxLine+1), "line longer than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Feed the stream in every chunk size from 1 byte to all of it.
			for _, chunk := range []int{1, 2, 3, 7, 64, len(tt.stream)} {
				var g respGuard
				var err error
				for i := 0; i < len(tt.stream) && err == nil; i += chunk {
					err = g.scan([]byte(tt.stream[i:min(i+chunk, len(tt.stream))]))
				}
				switch {
				case tt.wantErr == "" && err != nil:
					t.Fatalf("chunk %d: %v; want no error", chunk, err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Fatalf("chunk %d: %v; want an error containing %q", chunk, err, tt.wantErr)
				}
				if tt.wantErr == "" && (g.skip != 0 || g.inLine || g.pending != 0 || len(g.levels) != 0) {
					t.Fatalf("chunk %d: guard not back at a reply boundary: %+v", chunk, g)
				}
			}
		})
	}
}

// The real limit on status and error lines, fed in large reads as from
// a socket.
func TestRespGuardStatusLineLimit(t *testing.T) {
	chunk := []byte(strings.Repeat("x", 1<<20))
	for _, tt := range []struct {
		size    int
		wantErr bool
	}{{maxTextLine - 1, false}, {maxTextLine, true}} { // the CR counts
		var g respGuard
		err := g.scan([]byte("-"))
		for left := tt.size; left > 0 && err == nil; left -= len(chunk) {
			err = g.scan(chunk[:min(left, len(chunk))])
		}
		if err == nil {
			err = g.scan([]byte("\r\n"))
		}
		if got := err != nil; got != tt.wantErr {
			t.Errorf("status line of %d bytes: %v; want error %v", tt.size, err, tt.wantErr)
		}
	}
}

func TestHostileHugeBulkIsBoundedError(t *testing.T) {
	fake := redistest.NewFakeServer(t, redistest.PongFirst(redistest.HugeBulk())) // the GET's reply, not the dial's PING
	p := newTestPool(t, Config{Addr: fake.Addr()})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := p.Do(context.Background(), "GET", "k")
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "exceeds the limit") || !strings.Contains(err.Error(), fake.Addr()) {
		t.Fatalf("GET from a server announcing a 2 GiB bulk = %v; want a limit error naming the server", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
		t.Fatalf("allocated %d MiB for a hostile reply", grown>>20)
	}
	if st := p.Stats(); st.DestroyedBroken != 1 || st.Idle != 0 {
		t.Fatalf("Stats = %+v; want the connection destroyed as broken", st)
	}
}

func BenchmarkRespGuard(b *testing.B) {
	reply := []byte("$100\r\n" + strings.Repeat("v", 100) + "\r\n")
	b.SetBytes(int64(len(reply)))
	var g respGuard
	for i := 0; i < b.N; i++ {
		g.scan(reply)
	}
}
