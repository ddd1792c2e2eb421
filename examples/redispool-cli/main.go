// Command redispool-cli drives a redispool.Pool from the command line: a
// load generator that shows the pool at work, a redis-cli-style command
// runner, and a live view of the pool's statistics.
//
// With no --url it starts an embedded miniredis, so every command runs
// anywhere:
//
//	go run ./examples/redispool-cli bench -d 2s
//	go run ./examples/redispool-cli --url redis://localhost:6379/0 do SET greeting hello
//	go run ./examples/redispool-cli stats --watch -c 64 --max-total 16
//
// Run it with -h, or "help COMMAND", for the flags.
//
// Exit status: 0 on success, 1 for a runtime failure (server unreachable,
// error reply, failed operations during bench), 2 for a usage error (bad
// flag, URL or pool configuration).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks the command to wrap up; restoring the
		// default handling lets a second one kill the process.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
