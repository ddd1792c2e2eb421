package redispool

// Blocking commands through the one-shot Do.
//
// Every read waits at most ReadTimeout, which a context deadline can
// shorten but not lengthen. On a borrowed connection that is the right
// rule: its owner picks a blocking read's limit with DoWithTimeout. The
// caller of Pool.Do and Cluster.Do cannot, and p.Do(ctx, "BLPOP", k, 5)
// used to fail with an i/o timeout after ReadTimeout however long ctx
// allowed, closing a connection the server was still answering. So for
// the commands that say how long they block (the blockArg of their entry
// in keys.go), the one-shot Do waits that long plus ReadTimeout for the
// reply, and never longer than ctx allows.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"
)

// maxBlock caps how long a read waits for a blocking command, so that
// a timeout of years does not overflow a time.Duration or the read
// deadline computed from it. It is more than a century.
const maxBlock = time.Duration(1 << 62)

// blockingReadTimeout returns the read timeout Pool.Do and Cluster.Do use
// for cmd: readTimeout (the pool's, defaults applied; 0 means none),
// lengthened for a blocking command by how long the command may block:
//
//   - a timeout t > 0 gives t + readTimeout: the server answers after t
//     at the latest, and readTimeout covers the round trip as for any
//     command;
//   - a timeout of 0 (block until there is something) gives no limit
//     when ctx has a deadline, which then ends the wait, and
//     readTimeout when it has none. A context that can only be
//     cancelled is not enough: a server gone silent without closing
//     the connection would hold the read until the cancel, which may
//     never come. Give ctx a deadline, or loop on a finite timeout;
//   - a command that does not block this time (XREAD without BLOCK),
//     or a timeout that is not a non-negative number, gives readTimeout:
//     the server answers at once, with the reply or an error.
//
// The caller takes the earlier of the result and ctx's deadline, as for
// any command (conn.withContext).
func blockingReadTimeout(ctx context.Context, readTimeout time.Duration, cmd string, args []any) time.Duration {
	if readTimeout <= 0 {
		return readTimeout // no limit already
	}
	block, ok := blockingTimeout(cmd, args)
	switch {
	case !ok:
		return readTimeout
	case block == 0:
		if _, ok := ctx.Deadline(); ok {
			return 0
		}
		return readTimeout
	case block > maxBlock-readTimeout:
		return maxBlock
	}
	return block + readTimeout
}

// blockingTimeout returns how long cmd may block on the server: its
// timeout argument, 0 for "until there is something", and ok false for a
// command that does not block or a timeout the server would refuse.
func blockingTimeout(cmd string, args []any) (d time.Duration, ok bool) {
	var arg any
	unit := time.Second
	switch lookupCommand(cmd).block {
	case blockNever:
		return 0, false
	case blockLastSec:
		if len(args) < 2 { // a key and the timeout
			return 0, false
		}
		arg = args[len(args)-1]
	case blockFirstSec:
		if len(args) < 1 {
			return 0, false
		}
		arg = args[0]
	case blockOptionMs:
		if arg, ok = blockOption(args); !ok {
			return 0, false
		}
		unit = time.Millisecond
	}
	n, ok := argFloat(arg)
	// The comparison is false for NaN, and the bound keeps the product
	// below maxBlock, so that the conversion cannot overflow.
	if !ok || !(n >= 0) {
		return 0, false
	}
	if n >= float64(maxBlock/unit) {
		return maxBlock, true
	}
	return time.Duration(n * float64(unit)), true
}

// blockOption returns the value of XREAD's or XREADGROUP's BLOCK option,
// found as streamsIndex finds STREAMS: among the options before it.
func blockOption(args []any) (any, bool) {
	for i := 0; i < len(args); i++ {
		switch {
		case argIs(args[i], "BLOCK"):
			if i+1 < len(args) {
				return args[i+1], true
			}
			return nil, false
		case argIs(args[i], "COUNT"):
			i++
		case argIs(args[i], "GROUP"):
			i += 2
		case argIs(args[i], "NOACK"):
		default: // STREAMS, or a syntax error
			return nil, false
		}
	}
	return nil, false
}

// argFloat parses a timeout argument given as a number or as decimal
// text, the forms redigo sends as the server reads them. Anything else
// (a time.Duration, which redigo sends as "5s") is not a timeout.
func argFloat(arg any) (float64, bool) {
	switch a := arg.(type) {
	case int:
		return float64(a), true
	case int64:
		return float64(a), true
	case int32:
		return float64(a), true
	case uint:
		return float64(a), true
	case uint64:
		return float64(a), true
	case uint32:
		return float64(a), true
	case float64:
		return a, true
	case float32:
		return float64(a), true
	case string:
		return parseTimeout(a)
	case []byte:
		return parseTimeout(string(a))
	}
	return 0, false
}

func parseTimeout(s string) (float64, bool) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

// deadlineErr returns err, or ctx's error when err is a read timeout
// that came from ctx's deadline. conn.withContext gives the read ctx's
// deadline as its own when it is the earlier; the socket's timer and
// ctx's then fire together, and the read can return before ctx records
// its error, leaving an i/o timeout where the caller expects
// context.DeadlineExceeded. ctx may record it a moment later, between a
// caller's check of ctx.Err and this one: then ctx's error is the answer
// too (a CI run caught BLPOP under a 3s ctx failing in that gap).
func deadlineErr(ctx context.Context, err error) error {
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("redispool: %w", ctxErr)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Now().Before(dl) {
		return err
	}
	return fmt.Errorf("redispool: %w", context.DeadlineExceeded)
}
