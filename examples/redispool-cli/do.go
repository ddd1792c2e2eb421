package main

import (
	"context"
	"encoding/base64"
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
			if err := s.firstContact(ctx, s.Ping); err != nil {
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
does. On a terminal: "OK", "value" (quoted and escaped), (integer) 1, (nil),
numbered arrays, (error) MESSAGE; the text replies of INFO, CLIENT LIST,
CLIENT INFO, MEMORY DOCTOR and the like as they are. When stdout is not a
terminal, or with --raw: every string as it is, with no quotes, prefixes
or numbering, one per line (--no-raw keeps the terminal format). An error
reply exits with status 1. Flags go before COMMAND; everything after it is
passed to Redis as is.

With --json the reply is printed as {"reply": ...} or {"error": "..."}.
A bulk string that is valid UTF-8 is a JSON string; any other bulk
string is {"base64": "..."}, so binary values and text cannot be
confused. Integers are numbers, nil is null, arrays are arrays, and an
error inside an array (from EXEC or EVAL) is {"error": "..."}.

RESP3 (HELLO 3) is refused: redigo, under redispool, speaks RESP2 only.

On a cluster (redis+cluster://) a command is routed by its key, and a
command without one runs on one master: DBSIZE, FLUSHALL, KEYS and SCAN
then cover that master's keys only, and a note on stderr says so. With
--all-masters the command runs on every master: DBSIZE is summed, KEYS
concatenated, SCAN (from cursor 0) iterated to the end on each master
and concatenated, and other replies printed once when every master gave
the same (FLUSHALL: OK), else by master.`,
	flags: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
		allMasters := fs.Bool("all-masters", false, "on a cluster, run COMMAND on every master and combine the replies (DBSIZE summed, KEYS and SCAN concatenated)")
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return usagef("missing COMMAND")
			}
			if err := checkProtocol(args); err != nil {
				return err
			}
			if *allMasters {
				if !isClusterURL(e.url) {
					return usagef("--all-masters needs a cluster: a redis+cluster:// or rediss+cluster:// --url")
				}
				if err := checkAllMasters(args); err != nil {
					return err
				}
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
			var reply any
			err = s.firstContact(ctx, func(ctx context.Context) (err error) {
				if *allMasters {
					reply, err = s.doAllMasters(ctx, args[0], cmdArgs)
				} else {
					reply, err = s.Do(ctx, args[0], cmdArgs...)
				}
				return err
			})
			var rerr redis.Error
			if err != nil && (*allMasters || !errors.As(err, &rerr)) {
				// With --all-masters the error names the master that
				// sent it.
				return fmt.Errorf("%s: %w", s.where, err)
			}
			if s.cluster != nil && !*allMasters && keyspaceCommand(args[0]) {
				fmt.Fprintf(e.stderr, "%s: note: on a cluster, %s ran on one master only; \"do --all-masters %s\" runs it on every master\n",
					progName, strings.ToUpper(args[0]), strings.Join(args, " "))
			}
			if rerr != "" {
				reply = rerr
			}
			switch {
			case e.json && rerr != "":
				writeJSON(e.stdout, false, map[string]any{"error": string(rerr)})
			case e.json:
				writeJSON(e.stdout, false, map[string]any{"reply": jsonReply(reply)})
			case rawStrings(args):
				io.WriteString(e.stdout, formatRaw(reply))
			case e.rawOutput():
				io.WriteString(e.stdout, formatRaw(reply)+"\n")
			default:
				io.WriteString(e.stdout, formatReply(reply, ""))
			}
			if rerr != "" {
				return errReported
			}
			return nil
		}
	},
}

// checkProtocol refuses HELLO with a protocol version of 3 or more:
// redigo parses RESP2 only, and would fail on the first RESP3 reply with
// a baffling error.
func checkProtocol(args []string) error {
	if !strings.EqualFold(args[0], "HELLO") || len(args) < 2 {
		return nil
	}
	if v, err := strconv.Atoi(args[1]); err == nil && v >= 3 {
		return usagef("HELLO %s: RESP3 is not supported: redigo, the client under redispool, speaks RESP2 only; use HELLO 2, or HELLO with no version", args[1])
	}
	return nil
}

// rawStrings reports whether redis-cli prints the reply to args as it
// is even on a terminal: commands whose reply is text meant for people,
// such as INFO and CLIENT LIST.
func rawStrings(args []string) bool {
	cmd := strings.ToUpper(args[0])
	sub := ""
	if len(args) > 1 {
		sub = strings.ToUpper(args[1])
	}
	switch cmd {
	case "INFO", "LOLWUT":
		return true
	case "CLIENT":
		return sub == "LIST" || sub == "INFO"
	case "CLUSTER":
		return len(args) == 2 && (sub == "NODES" || sub == "INFO")
	case "MEMORY":
		return sub == "DOCTOR" || sub == "MALLOC-STATS"
	case "LATENCY":
		return len(args) == 2 && sub == "DOCTOR" || len(args) == 3 && sub == "GRAPH"
	case "DEBUG":
		return sub == "HTSTATS" || sub == "HTSTATS-KEY" || sub == "LISTPACK" || sub == "QUICKLIST"
	}
	return false
}

// rawOutput reports whether replies are printed raw: with --raw, or
// when stdout is not a terminal unless --no-raw says otherwise.
func (e *env) rawOutput() bool {
	switch {
	case e.raw:
		return true
	case e.noRaw:
		return false
	}
	return !e.tty
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

// formatRaw formats a reply as redis-cli does when its output is not a
// terminal: strings as they are, integers in decimal, nil as nothing,
// errors followed by a newline, the elements of arrays, flattened, one
// per line.
func formatRaw(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return v
	case []byte:
		return string(v)
	case redis.Error:
		return string(v) + "\n"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = formatRaw(e)
		}
		return strings.Join(parts, "\n")
	default:
		return fmt.Sprint(v)
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

// jsonReply converts a reply to a value that encodes naturally and
// without ambiguity: bulk strings that are valid UTF-8 as strings, other
// bulk strings as {"base64": "..."}, errors inside arrays as
// {"error": "..."}.
func jsonReply(v any) any {
	switch v := v.(type) {
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return map[string]string{"base64": base64.StdEncoding.EncodeToString(v)}
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
