package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gomodule/redigo/redis"
)

var pingCommand = &command{
	name:    "ping",
	summary: "check that the server answers, through the pool",
	help: `Ping borrows a connection and sends PING. It prints PONG, or fails with
exit status 1 when the server is unreachable or rejects the credentials.`,
	flags: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments: %s", strings.Join(args, " "))
			}
			s, err := e.openPool(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			start := time.Now()
			if err := s.Ping(ctx); err != nil {
				return fmt.Errorf("cannot reach %s: %w", s.where, err)
			}
			if e.json {
				return writeJSON(e.stdout, false, map[string]any{
					"reply":      "PONG",
					"latency_ms": ms(time.Since(start)),
				})
			}
			fmt.Fprintln(e.stdout, "PONG")
			return nil
		}
	},
}

var doCommand = &command{
	name:    "do",
	args:    "COMMAND [ARG...]",
	summary: "run one command through the pool and print the reply like redis-cli",
	help: `Do borrows a connection, runs one command and prints the reply as redis-cli
does: "OK", "value", (integer) 1, (nil), numbered arrays. An error reply
prints as (error) MESSAGE and exits with status 1. Flags go before
COMMAND; everything after it is passed to Redis as is.

With --json the reply is printed as {"reply": ...} or {"error": "..."}.`,
	flags: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usagef("missing COMMAND")
			}
			s, err := e.openPool(ctx)
			if err != nil {
				return err
			}
			defer s.close()
			cmdArgs := make([]any, len(args)-1)
			for i, a := range args[1:] {
				cmdArgs[i] = a
			}
			reply, err := s.Do(ctx, args[0], cmdArgs...)
			var rerr redis.Error
			if err != nil && !errors.As(err, &rerr) {
				return fmt.Errorf("%s: %w", s.where, err)
			}
			if e.json {
				if rerr != "" {
					writeJSON(e.stdout, false, map[string]any{"error": string(rerr)})
				} else {
					writeJSON(e.stdout, false, map[string]any{"reply": jsonReply(reply)})
				}
			} else {
				if rerr != "" {
					reply = rerr
				}
				io.WriteString(e.stdout, formatReply(reply, ""))
			}
			if rerr != "" {
				return errReported
			}
			return nil
		}
	},
}

// errReported is returned by a command that has already said what went
// wrong on stdout, such as an error reply printed by do; run exits with
// status 1 without printing it again.
var errReported = errors.New("failure already reported")

// formatReply formats a reply as redis-cli does on a terminal. indent
// prefixes every line but the first, for the elements of nested arrays.
func formatReply(v any, indent string) string {
	switch v := v.(type) {
	case nil:
		return "(nil)\n"
	case int64:
		return "(integer) " + strconv.FormatInt(v, 10) + "\n"
	case string: // a status reply
		return v + "\n"
	case []byte:
		return quote(v) + "\n"
	case redis.Error:
		return "(error) " + string(v) + "\n"
	case []any:
		if len(v) == 0 {
			return "(empty array)\n"
		}
		width := len(strconv.Itoa(len(v)))
		inner := indent + strings.Repeat(" ", width+2)
		var b strings.Builder
		for i, e := range v {
			if i > 0 {
				b.WriteString(indent)
			}
			fmt.Fprintf(&b, "%*d) ", width, i+1)
			b.WriteString(formatReply(e, inner))
		}
		return b.String()
	default:
		return fmt.Sprint(v) + "\n"
	}
}

// quote quotes a bulk string as redis-cli does: printable ASCII as is,
// the usual escapes for \n, \r, \t, \a and \b, \xNN for other bytes.
func quote(s []byte) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for _, c := range s {
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '\a':
			b = append(b, `\a`...)
		case '\b':
			b = append(b, `\b`...)
		default:
			if c >= 0x20 && c < 0x7f {
				b = append(b, c)
			} else {
				b = fmt.Appendf(b, `\x%02x`, c)
			}
		}
	}
	return string(append(b, '"'))
}

// jsonReply converts a reply to a value that encodes naturally: bulk
// strings as strings (valid UTF-8 only; other bytes as redis-cli quotes
// them), errors inside arrays as {"error": "..."}.
func jsonReply(v any) any {
	switch v := v.(type) {
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return quote(v)
	case redis.Error:
		return map[string]string{"error": string(v)}
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonReply(e)
		}
		return out
	default:
		return v
	}
}

// writeJSON writes v as one line of JSON, or indented.
func writeJSON(w io.Writer, indent bool, v any) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// ms converts a duration to milliseconds, to the microsecond, for JSON
// output.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1e3
}

// secs converts a duration to seconds, to the millisecond, for JSON
// output.
func secs(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)) / 1e3
}

// perSec rounds a rate to a tenth for JSON output.
func perSec(r float64) float64 {
	return math.Round(r*10) / 10
}
