package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// serverUsage is what redis-server reports of its own work: the CPU time
// it has used (INFO cpu: used_cpu_sys + used_cpu_user) and the commands
// it has processed (INFO stats: total_commands_processed).
type serverUsage struct {
	cpu      time.Duration
	commands int64
}

// serverMeter reads a single redis-server's usage over a connection of
// its own, so that the contenders' connections are not disturbed. Each
// read is one INFO command, counted by the server among the commands: one
// per run of thousands.
type serverMeter struct{ c redis.Conn }

func newServerMeter(ctx context.Context, addr string) (*serverMeter, error) {
	c, err := redis.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &serverMeter{c: c}, nil
}

func (m *serverMeter) read() (serverUsage, bool) {
	if m == nil {
		return serverUsage{}, false
	}
	info, err := redis.String(m.c.Do("INFO"))
	if err != nil {
		return serverUsage{}, false
	}
	var u serverUsage
	var sys, user float64
	found := 0
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "used_cpu_sys":
			sys, err = strconv.ParseFloat(v, 64)
		case "used_cpu_user":
			user, err = strconv.ParseFloat(v, 64)
		case "total_commands_processed":
			u.commands, err = strconv.ParseInt(v, 10, 64)
		default:
			continue
		}
		if err != nil {
			return serverUsage{}, false
		}
		found++
	}
	u.cpu = time.Duration((sys + user) * float64(time.Second))
	return u, found == 3
}

func (m *serverMeter) close() {
	if m != nil {
		m.c.Close()
	}
}
