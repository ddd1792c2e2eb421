package redispool

import (
	"context"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// Client is what a *Pool and a *Cluster have in common, so that a
// service can take one Redis URL from its configuration (Open) and serve
// a single server, a Sentinel group or a Cluster with the same code, as
// go-redis's UniversalClient does.
//
// Stats is not part of it, since a Cluster's hold one Pool's Stats per
// node and counters of its own: use a type switch.
//
//	var active int
//	switch c := client.(type) {
//	case *redispool.Pool:
//		active = c.Stats().Active
//	case *redispool.Cluster:
//		for _, s := range c.Stats().Nodes {
//			active += s.Active
//		}
//	}
type Client interface {
	// Get returns a connection; it never returns nil. See Pool.Get and
	// Cluster.Get.
	Get() redis.Conn
	// GetContext returns a connection, which the caller must Close. See
	// Pool.GetContext and Cluster.GetContext.
	GetContext(ctx context.Context) (redis.Conn, error)
	// Do runs one command on a connection borrowed for it.
	Do(ctx context.Context, cmd string, args ...any) (any, error)
	// Ping checks that Redis is reachable and accepts the credentials.
	Ping(ctx context.Context) error
	// Close closes the client and its connections; it is idempotent.
	Close() error
	// RedigoPool returns a *redis.Pool that borrows from the client,
	// for libraries that take redigo's concrete pool type.
	RedigoPool() *redis.Pool
}

var (
	_ Client = (*Pool)(nil)
	_ Client = (*Cluster)(nil)
)

// Open parses rawURL and returns the client it names: a *Cluster for
// redis+cluster:// and rediss+cluster:// (see ParseClusterURL), and a
// *Pool for every scheme ParseURL takes — redis://, rediss://, unix://,
// redis+sentinel:// and rediss+sentinel://. The scheme is matched
// without regard to case.
//
// Like New and NewCluster, Open does not connect: it fails only for a
// URL or configuration that is invalid. Call Ping to fail fast at
// startup. Its errors never contain the password. ctx is not retained.
func Open(ctx context.Context, rawURL string) (Client, error) {
	if scheme, _, ok := strings.Cut(rawURL, ":"); ok &&
		(strings.EqualFold(scheme, "redis+cluster") || strings.EqualFold(scheme, "rediss+cluster")) {
		cfg, err := ParseClusterURL(rawURL)
		if err != nil {
			return nil, err
		}
		c, err := NewCluster(ctx, cfg)
		if err != nil {
			return nil, err // not a nil *Cluster in a non-nil Client
		}
		return c, nil
	}
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	p, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}
