package redispool

import (
	"bytes"
	"fmt"
	"net"
)

// Limits on what one reply may declare. redigo allocates a bulk string's
// or an array's full declared size before reading it, so a broken or
// hostile server could make it allocate gigabytes with a few bytes
// ("$2147483647\r\n"). Redis itself refuses bulk strings over 512 MiB by
// default (proto-max-bulk-len).
const (
	maxBulkLen      = 512 << 20 // bytes in one bulk string
	maxPendingElems = 1 << 24   // array elements declared but not yet received
)

// Limits on what no reply Redis sends comes near, for the hostile or
// broken server that would otherwise crash the process or exhaust its
// memory.
//
// redigo's parser recurses once per level of nested arrays, so 36 MB of
// "*1\r\n" overflows the goroutine stack: a fatal error, not a panic.
// Redis's own replies nest a few levels; the deepest are a script's
// nested tables, which Lua's stack limit cuts short: Redis 7.0 returns
// 7,999 levels and refuses 8,000 ("reached lua stack limit"). 10,000
// admits them and keeps redigo's recursion to a few MB of stack.
//
// redigo reads a line (a status, an error, an integer, a length) until
// its CRLF, growing a buffer as it goes, so a "+" followed by gigabytes
// without CRLF takes gigabytes. Lines with a number on them are a few
// dozen bytes; Redis bounds the lines it reads itself at 64 KiB
// (PROTO_INLINE_MAX_SIZE), and so does the guard. Status and error lines
// are short except where they echo user data: MONITOR's report of a
// command with its arguments, a script's status_reply or error_reply.
// 64 MiB admits those in all but the most outlandish cases (a MONITOR
// of 16 MiB binary values) and bounds what one reply can take.
const (
	maxDepth    = 10000    // levels of nested arrays
	maxLine     = 64 << 10 // bytes in a line other than a status or error
	maxTextLine = 64 << 20 // bytes in a status or error line
)

// guardConn is the connection redigo reads from. It follows the RESP
// framing of the bytes going by and fails the read that would make
// redigo allocate beyond the limits; the connection is then closed as
// broken. It costs a scan of each reply's header lines; payloads are
// skipped over.
type guardConn struct {
	net.Conn
	addr string
	g    respGuard
}

func (c *guardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if gerr := c.g.scan(b[:n]); gerr != nil {
		return 0, fmt.Errorf("redispool: reply from %s rejected: %w", c.addr, gerr)
	}
	return n, err
}

// respGuard is a streaming RESP (2 and 3) framing scanner.
type respGuard struct {
	skip    int64 // payload bytes, with their CRLF, to pass over
	inLine  bool  // inside a type-prefixed line
	kind    byte  // the line's type byte
	lineLen int64 // bytes of the line so far, after the type byte, its CR included
	num     int64 // the length on the line so far
	digits  bool  // num has at least one digit
	neg     bool  // the length is negative (a nil)
	numDone bool  // the length has ended
	pending int64 // array elements declared and not yet seen
	// levels holds, for each array being received, outermost first,
	// how many of its elements are still to come in full.
	levels []int32
}

func (g *respGuard) scan(b []byte) error {
	for i := 0; i < len(b); {
		if g.skip > 0 {
			n := min(int64(len(b)-i), g.skip)
			i += int(n)
			g.skip -= n
			continue
		}
		if !g.inLine {
			g.inLine, g.kind, g.lineLen = true, b[i], 0
			g.num, g.digits, g.neg, g.numDone = 0, false, false, false
			i++
			continue
		}
		if g.numDone || !hasLength(g.kind) {
			// No number to read: find the line's end without a look at
			// each byte.
			end := bytes.IndexByte(b[i:], '\n')
			n := end
			if end < 0 {
				n = len(b) - i
			}
			g.lineLen += int64(n)
			if g.lineLen > g.lineLimit() {
				return g.lineTooLong()
			}
			if end < 0 {
				return nil
			}
			i += end + 1
			if err := g.endLine(); err != nil {
				return err
			}
			continue
		}
		c := b[i]
		i++
		if c == '\n' {
			if err := g.endLine(); err != nil {
				return err
			}
			continue
		}
		if g.lineLen++; g.lineLen > maxLine {
			return g.lineTooLong()
		}
		switch {
		case c >= '0' && c <= '9':
			g.num = g.num*10 + int64(c-'0')
			g.digits = true
			if g.num > maxBulkLen && g.num > maxPendingElems {
				return g.tooLarge()
			}
		case c == '-' && !g.digits:
			g.neg = true
		default:
			g.numDone = true
		}
	}
	return nil
}

func (g *respGuard) endLine() error {
	g.inLine = false
	if g.pending > 0 {
		g.pending-- // this line starts one element of an enclosing array
	}
	if !g.neg && g.digits {
		switch g.kind {
		case '$', '=', '!', ';': // bulk string, verbatim string, bulk error, stream chunk
			if g.num > maxBulkLen {
				return g.tooLarge()
			}
			g.skip = g.num + 2
		case '*', '~', '>', '%', '|': // array, set, push, map and attribute (two per entry)
			n := g.num
			if g.kind == '%' || g.kind == '|' {
				n *= 2
			}
			g.pending += n
			if g.pending > maxPendingElems {
				return g.tooLarge()
			}
			if n > 0 {
				if len(g.levels) == maxDepth {
					return fmt.Errorf("reply nested deeper than %d levels", maxDepth)
				}
				g.levels = append(g.levels, int32(n))
				return nil // complete when its last element is
			}
		}
	}
	// An element is complete: a bulk string's payload is passed over as
	// a whole, so it counts from its header. So may be the arrays it
	// ends.
	for len(g.levels) > 0 {
		top := len(g.levels) - 1
		if g.levels[top]--; g.levels[top] > 0 {
			break
		}
		g.levels = g.levels[:top]
	}
	return nil
}

func (g *respGuard) lineLimit() int64 {
	if g.kind == '+' || g.kind == '-' {
		return maxTextLine
	}
	return maxLine
}

func (g *respGuard) lineTooLong() error {
	return fmt.Errorf("%q line longer than %d bytes", g.kind, g.lineLimit())
}

func hasLength(kind byte) bool {
	switch kind {
	case '$', '=', '!', ';', '*', '~', '>', '%', '|':
		return true
	}
	return false
}

func (g *respGuard) tooLarge() error {
	if g.kind == '$' || g.kind == '=' || g.kind == '!' || g.kind == ';' {
		return fmt.Errorf("bulk length %d%s exceeds the limit of %d bytes", g.num, ellipsis(g), maxBulkLen)
	}
	return fmt.Errorf("array of %d%s elements exceeds the limit of %d pending elements", g.num, ellipsis(g), maxPendingElems)
}

func ellipsis(g *respGuard) string {
	if g.numDone {
		return ""
	}
	return "..." // rejected before the length ended
}
