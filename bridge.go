package redispool

import (
	"context"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
)

// Many libraries take redigo's concrete *redis.Pool rather than an
// interface (boj/redistore, gin-contrib/sessions' redis store,
// alexedwards/scs's redisstore, gocraft/work, ...). RedigoPool gives
// them one whose every connection is borrowed from redispool: a
// redis.Pool that keeps no connection of its own (MaxIdle 0) and dials
// by borrowing. redigo wraps the borrowed connection in its own and, on
// Close, undoes what it tracks (MULTI, WATCH, subscriptions) and reads
// pending replies, then closes ours, which returns it to redispool with
// the rest of redispool's reset. Nothing is pooled twice, so every
// redispool check (borrow peek, MaxConnLifetime, Sentinel generations,
// Stats, AbandonedTimeout) sees every connection.

// RedigoPool returns a *redis.Pool whose connections are borrowed from
// p, for libraries that take redigo's concrete pool type. Every call
// returns the same *redis.Pool.
//
// It keeps no connection of its own: MaxIdle is 0, so a connection
// closed by its user goes straight back to p; MaxActive is 0 and Wait
// false, since p limits and waits (Config.MaxTotal, BorrowTimeout,
// FailFast); there is no TestOnBorrow or IdleTimeout, since p checks
// connections itself. Its Dial borrows under context.Background, so it
// waits at most BorrowTimeout; its DialContext borrows under the
// caller's context, as GetContext does. A borrow that fails makes
// redigo's Get return an error connection (whose Close returns nil)
// with p's error: errors.Is(err, redis.ErrPoolExhausted) holds when p
// was exhausted.
//
// Its methods describe only the connections that went through it:
// ActiveCount is the number now borrowed through it, IdleCount is
// always 0, and Stats' WaitCount and WaitDuration stay 0 (the waits
// happen in p: see p.Stats). Its Close does not close p; it marks the
// redis.Pool closed, so that its Get fails from then on with redigo's
// "get on closed pool" — and since RedigoPool always returns that same
// redis.Pool, for every user of it. Connections borrowed through it go
// back to p when closed, as always. p must still be closed by its
// owner, after the libraries using the redis.Pool are done with it.
func (p *Pool) RedigoPool() *redis.Pool {
	return redigoPool(&p.redigo, p.GetContext)
}

// RedigoPool returns a *redis.Pool whose connections come from c, for
// libraries that take redigo's concrete pool type. Every call returns
// the same *redis.Pool. A connection from it binds to a node at its
// first command with a key, as with GetContext; a library that runs
// a transaction or a multi-key command must keep its keys in one slot
// (a {hash tag}).
//
// It keeps no connection of its own, as Pool.RedigoPool describes:
// ActiveCount is the number of connections now borrowed through it,
// IdleCount is always 0, its Close makes its own Get fail from then on
// and does not close c, and c must still be closed by its owner.
func (c *Cluster) RedigoPool() *redis.Pool {
	return redigoPool(&c.redigo, c.GetContext)
}

// atomicRedigoPool holds a Pool's or Cluster's RedigoPool, nil until
// first asked for.
type atomicRedigoPool = atomic.Pointer[redis.Pool]

// redigoPool returns *slot, first setting it to a redis.Pool that
// borrows with get. Creating one that loses the race costs nothing: it
// holds no connection and starts no goroutine until it is used.
func redigoPool(slot *atomicRedigoPool, get func(context.Context) (redis.Conn, error)) *redis.Pool {
	if rp := slot.Load(); rp != nil {
		return rp
	}
	rp := &redis.Pool{
		Dial:        func() (redis.Conn, error) { return get(context.Background()) },
		DialContext: get,
		MaxIdle:     0,
		MaxActive:   0,
		Wait:        false,
	}
	if slot.CompareAndSwap(nil, rp) {
		return rp
	}
	return slot.Load()
}

// poolExhausted is the type of ErrPoolExhausted. Its Is method makes
// every exhaustion error, however wrapped, match redigo's
// redis.ErrPoolExhausted as well, so that code written for redigo's
// pool (errors.Is(err, redis.ErrPoolExhausted)) recognises it, directly
// and through RedigoPool. A comparison with == cannot match a wrapped
// error; use errors.Is.
type poolExhausted struct{}

func (poolExhausted) Error() string { return "redispool: connection pool exhausted" }

func (poolExhausted) Is(target error) bool { return target == redis.ErrPoolExhausted }
