package redispool

// RESP as the shared connections speak it (pipeline.go): commands
// encoded straight into the pipe's write buffer, as redigo encodes its
// arguments, and replies parsed as redigo returns them, from the same
// stream redigo reads, so behind the same reply guard (guard.go).

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"github.com/gomodule/redigo/redis"
)

// appendCommand appends cmd and args as a RESP array of bulk strings,
// each argument written as redigo writes it.
func appendCommand(b []byte, cmd string, args []any) []byte {
	b = appendHeader(b, '*', len(args)+1)
	b = appendBulkString(b, cmd)
	for _, a := range args {
		b = appendBulkArg(b, a, true)
	}
	return b
}

func appendHeader(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

func appendBulkString(b []byte, s string) []byte {
	b = appendHeader(b, '$', len(s))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

func appendBulkBytes(b []byte, s []byte) []byte {
	b = appendHeader(b, '$', len(s))
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendBulkArg appends arg as a bulk string of the text redigo sends
// for it (slot.go's appendArg), without allocating for strings, byte
// slices, numbers, booleans and nil.
func appendBulkArg(b []byte, arg any, argumentOK bool) []byte {
	switch a := arg.(type) {
	case string:
		return appendBulkString(b, a)
	case []byte:
		return appendBulkBytes(b, a)
	case redis.Argument:
		if argumentOK {
			return appendBulkArg(b, a.RedisArg(), false)
		}
		return appendBulkBytes(b, fmt.Append(nil, a))
	}
	var scratch [32]byte
	if text, ok := appendArg(scratch[:0], arg); ok {
		return appendBulkBytes(b, text)
	}
	return appendBulkBytes(b, fmt.Append(nil, arg))
}

// Replies that redigo also returns without allocating.
var (
	okReply   any = "OK"
	pongReply any = "PONG"
)

type pipeProtocolError string

func (e pipeProtocolError) Error() string { return "redispool: protocol error: " + string(e) }

// readReply reads one RESP2 reply and returns it as redigo would: an
// error reply as a redis.Error value. err is an I/O or protocol error
// only.
func (p *pipe) readReply() (any, error) {
	line, err := p.readLine()
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, pipeProtocolError("short response line")
	}
	switch line[0] {
	case '+':
		switch string(line[1:]) {
		case "OK":
			return okReply, nil
		case "PONG":
			return pongReply, nil
		}
		return string(line[1:]), nil
	case '-':
		return redis.Error(line[1:]), nil
	case ':':
		return parseInteger(line[1:])
	case '$':
		n, err := parseLength(line[1:])
		if n < 0 || err != nil {
			return nil, err
		}
		v := make([]byte, n)
		if _, err := io.ReadFull(p.rd, v); err != nil {
			return nil, err
		}
		if line, err := p.readLine(); err != nil {
			return nil, err
		} else if len(line) != 0 {
			return nil, pipeProtocolError("bad bulk string format")
		}
		return v, nil
	case '*':
		n, err := parseLength(line[1:])
		if n < 0 || err != nil {
			return nil, err
		}
		r := make([]any, n)
		for i := range r {
			if r[i], err = p.readReply(); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	return nil, pipeProtocolError("unexpected response line")
}

// readLine reads a line without its CRLF. The slice is valid until the
// next read.
func (p *pipe) readLine() ([]byte, error) {
	line, err := p.rd.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = p.rd.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return nil, err
	}
	i := len(line) - 2
	if i < 0 || line[i] != '\r' {
		return nil, pipeProtocolError("bad response line terminator")
	}
	return line[:i], nil
}

func parseLength(p []byte) (int, error) {
	if len(p) == 0 {
		return -1, pipeProtocolError("malformed length")
	}
	if p[0] == '-' && len(p) == 2 && p[1] == '1' {
		return -1, nil // a nil
	}
	n := 0
	for _, b := range p {
		if b < '0' || b > '9' || n > 1<<40 {
			return -1, pipeProtocolError("illegal bytes in length")
		}
		n = n*10 + int(b-'0')
	}
	return n, nil
}

func parseInteger(p []byte) (any, error) {
	neg := len(p) > 0 && p[0] == '-'
	if neg {
		p = p[1:]
	}
	if len(p) == 0 {
		return nil, pipeProtocolError("malformed integer")
	}
	var n int64
	for _, b := range p {
		if b < '0' || b > '9' {
			return nil, pipeProtocolError("illegal bytes in integer")
		}
		n = n*10 + int64(b-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}
