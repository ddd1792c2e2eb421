package redispool

import "context"

// A CommandHook observes commands, for tracing (the otel module's
// CommandHook makes a span of each). It is called as a command starts,
// with the command's context and what it may record, and the function
// it returns, if not nil, is called with the command's error (nil on
// success, a redis.Error for an error reply) once the reply has been
// read or the command has failed.
//
// It sees the commands a pool's connections run for their users with
// Do, DoWithTimeout or DoContext — on a connection from Get or
// GetContext, through Pool.Do, Cluster.Do or RedigoPool — each on the
// connection that runs it: a command that a Cluster follows to another
// node after MOVED or ASK is seen once per node. Its context is
// context.Background for Do and DoWithTimeout, which take none. It does
// not see commands queued with Send (pipelines, and what a pub/sub
// receiver reads), nor those the pool sends on its own behalf (AUTH,
// SELECT and CLIENT SETNAME when dialing, health-check PINGs, the
// resets on return, and a Cluster's slot-map loads on its control
// connections).
//
// It is never given the command's arguments, which may hold keys,
// values and secrets. It runs on the caller's goroutine and delays the
// command by its own cost; it must be safe for concurrent use.
type CommandHook func(ctx context.Context, cmd CommandInfo) (done func(err error))

// CommandInfo describes a command to a CommandHook.
type CommandInfo struct {
	Name    string // the command as the caller spelled it, "GET" or "get"; never its arguments
	Network string // "tcp" or "unix"
	Addr    string // the server's host:port (the node's, on a Cluster), or a unix socket's path
	DB      int    // Config.DB: the database connections start in
}

// startCommand calls the hook for cmd on c; the caller has checked that
// there is one.
func (c *conn) startCommand(ctx context.Context, cmd string) func(error) {
	return c.f.startCommand(ctx, cmd)
}

// startCommand calls the hook for cmd sent to the factory's server; the
// caller has checked that there is one. It returns nil, or the function
// to call with the command's error.
func (f *factory) startCommand(ctx context.Context, cmd string) func(error) {
	if cmd == "" {
		return nil // redigo's Do(""): a flush and a read of pending replies, no command
	}
	cfg := &f.cfg
	return cfg.CommandHook(ctx, CommandInfo{Name: cmd, Network: cfg.Network, Addr: f.addr(), DB: cfg.DB})
}
