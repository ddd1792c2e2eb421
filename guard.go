package redispool

import (
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
	num     int64 // the length on the line so far
	digits  bool  // num has at least one digit
	neg     bool  // the length is negative (a nil)
	numDone bool  // the length has ended
	pending int64 // array elements declared and not yet seen
}

func (g *respGuard) scan(b []byte) error {
	for i := 0; i < len(b); {
		if g.skip > 0 {
			n := min(int64(len(b)-i), g.skip)
			i += int(n)
			g.skip -= n
			continue
		}
		c := b[i]
		i++
		if !g.inLine {
			*g = respGuard{inLine: true, kind: c, pending: g.pending}
			continue
		}
		if c == '\n' {
			if err := g.endLine(); err != nil {
				return err
			}
			continue
		}
		if g.numDone || !hasLength(g.kind) {
			continue
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
	if g.neg || !g.digits {
		return nil
	}
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
	}
	return nil
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
