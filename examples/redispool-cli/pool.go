package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/redispool/redispool"
)

// global holds the flags every command accepts: where Redis is, how to
// size the pool, how to print.
type global struct {
	url      string
	json     bool
	logLevel string
	cacert   string
	insecure bool
	raw      bool // do prints replies raw, as redis-cli --raw
	noRaw    bool // do prints replies formatted, as redis-cli --no-raw

	// Pool flags, mapped onto redispool.Config.
	db              int
	clientName      string
	maxTotal        int
	maxIdle         int
	minIdle         int
	borrowTimeout   time.Duration
	dialTimeout     time.Duration
	readTimeout     time.Duration
	writeTimeout    time.Duration
	maxConnLifetime time.Duration
	maxConnIdleTime time.Duration
	failFast        bool
	fifo            bool

	// set holds the names of the flags given on the command line: only
	// those override the URL.
	set map[string]bool

	// pipelining is the --pipeline of bench and stats, applied to the
	// pool (every node's, for a cluster).
	pipelining pipelineMode
}

func (g *global) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", "", "Redis `URL`: redis://[[user]:password@]host[:port][/db][?param=value&...], rediss://... (TLS), unix:///path/to/socket, redis+sentinel://[[user]:password@]sentinel1[:port][,sentinel2...]/master_name[/db][?sentinel_password=...], or redis+cluster://host:port[,host:port...] (rediss+cluster:// with TLS) for a Redis Cluster; the query takes the pool parameters of redispool.ParseURL, and for a cluster those of redispool.ParseClusterURL (default: an embedded miniredis)")
	fs.BoolVar(&g.json, "json", false, "print results as JSON")
	fs.StringVar(&g.logLevel, "log-level", "", "log the pool's connection events to stderr at this `level`: debug, info, warn or error (default: no logging)")
	fs.StringVar(&g.cacert, "cacert", "", "verify a rediss:// server against the CA certificates in this PEM `file` instead of the system roots")
	fs.BoolVar(&g.insecure, "insecure", false, "do not verify a rediss:// server's certificate")
	fs.BoolVar(&g.raw, "raw", false, "do: print replies raw, as when stdout is not a terminal")
	fs.BoolVar(&g.noRaw, "no-raw", false, "do: print replies formatted, as on a terminal, even when stdout is not one")

	fs.IntVar(&g.db, "db", 0, "database `number` to SELECT (overrides the URL's)")
	fs.StringVar(&g.clientName, "client-name", "", "CLIENT SETNAME for every connection")
	fs.IntVar(&g.maxTotal, "max-total", 0, "most connections the pool holds, borrowed and idle (default: 10 per GOMAXPROCS)")
	fs.IntVar(&g.maxIdle, "max-idle", 0, "most idle connections kept (default: max-total)")
	fs.IntVar(&g.minIdle, "min-idle", 0, "idle connections kept ready, dialed in the background")
	fs.DurationVar(&g.borrowTimeout, "borrow-timeout", 0, "longest a borrow waits for a connection; negative: no limit (default 5s)")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", 0, "bound on connecting, AUTH and SELECT (default 5s)")
	fs.DurationVar(&g.readTimeout, "read-timeout", 0, "bound on reading each reply; negative: none (default 3s)")
	fs.DurationVar(&g.writeTimeout, "write-timeout", 0, "bound on writing each command; negative: none (default 3s)")
	fs.DurationVar(&g.maxConnLifetime, "max-conn-lifetime", 0, "close connections older than this (default: no limit)")
	fs.DurationVar(&g.maxConnIdleTime, "max-conn-idle-time", 0, "close connections idle longer than this; negative: no limit (default 30m)")
	fs.BoolVar(&g.failFast, "fail-fast", false, "fail a borrow at once, instead of waiting, when max-total connections are borrowed")
	fs.BoolVar(&g.fifo, "fifo", false, "hand out the least recently used idle connection first (default: most recently used)")
}

// config builds the pool's Config from --url, or from addr when there is
// no URL, and the pool flags given on the command line. It also returns a
// description of the server that is safe to print.
func (g *global) config(addr string) (cfg redispool.Config, where string, err error) {
	if g.url == "" {
		cfg = redispool.Config{Network: "tcp", Addr: addr}
		where = "embedded miniredis at " + addr
	} else {
		if cfg, err = redispool.ParseURL(g.url); err != nil {
			return cfg, "", usageError{err} // ParseURL's errors never hold the password
		}
		if sc := cfg.Sentinel; sc != nil {
			// url.Parse cannot read a list of hosts, and the query may
			// hold sentinel_password.
			where = fmt.Sprintf("Sentinel master %q via %s", sc.MasterName, strings.Join(sc.Addrs, ","))
		} else {
			u, err := url.Parse(g.url) // cannot fail: ParseURL parsed it
			if err != nil {
				return cfg, "", usageError{err}
			}
			where = u.Redacted()
		}
	}

	if g.set["db"] {
		cfg.DB = g.db
	}
	if err := g.apply(&cfg); err != nil {
		return cfg, "", err
	}
	return cfg, where, nil
}

// apply sets the pool flags given on the command line, and the TLS
// flags, in cfg: a single server's Config or a cluster's Node template.
func (g *global) apply(cfg *redispool.Config) error {
	set := func(name string) bool { return g.set[name] }
	if set("client-name") {
		cfg.ClientName = g.clientName
	}
	if set("max-total") {
		cfg.MaxTotal = g.maxTotal
	}
	if set("max-idle") {
		cfg.MaxIdle = g.maxIdle
	}
	if set("min-idle") {
		cfg.MinIdle = g.minIdle
	}
	if set("borrow-timeout") {
		cfg.BorrowTimeout = g.borrowTimeout
	}
	if set("dial-timeout") {
		cfg.DialTimeout = g.dialTimeout
	}
	if set("read-timeout") {
		cfg.ReadTimeout = g.readTimeout
	}
	if set("write-timeout") {
		cfg.WriteTimeout = g.writeTimeout
	}
	if set("max-conn-lifetime") {
		cfg.MaxConnLifetime = g.maxConnLifetime
	}
	if set("max-conn-idle-time") {
		cfg.MaxConnIdleTime = g.maxConnIdleTime
	}
	if set("fail-fast") {
		cfg.FailFast = g.failFast
	}
	if set("fifo") {
		cfg.FIFO = g.fifo
	}
	if n, ok := g.pipelining.conns(*cfg); ok {
		cfg.PipelineConns = n
	}

	if g.cacert != "" || g.insecure {
		if cfg.TLSConfig == nil {
			return usagef("--cacert and --insecure need a rediss:// URL")
		}
		if g.cacert != "" {
			pem, err := os.ReadFile(g.cacert)
			if err != nil {
				return usagef("--cacert: %v", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return usagef("--cacert: no PEM certificates in %s", g.cacert)
			}
			cfg.TLSConfig.RootCAs = roots
			if cfg.Sentinel != nil {
				cfg.Sentinel.TLSConfig.RootCAs = roots
			}
		}
		cfg.TLSConfig.InsecureSkipVerify = g.insecure
		if cfg.Sentinel != nil {
			cfg.Sentinel.TLSConfig.InsecureSkipVerify = g.insecure
		}
	}
	return nil
}

// clusterConfig builds a cluster's ClusterConfig from a redis+cluster://
// or rediss+cluster:// --url and the pool flags, which apply to every
// node's pool. It also returns a description of the cluster that is safe
// to print: the scheme and the seeds, never the credentials.
func (g *global) clusterConfig() (cfg redispool.ClusterConfig, where string, err error) {
	if cfg, err = redispool.ParseClusterURL(g.url); err != nil {
		return cfg, "", usageError{err} // ParseClusterURL's errors never hold the password
	}
	if g.set["db"] && g.db != 0 {
		return cfg, "", usagef("--db %d: a cluster has only database 0", g.db)
	}
	if err := g.apply(&cfg.Node); err != nil {
		return cfg, "", err
	}
	scheme, _, _ := strings.Cut(g.url, "://")
	return cfg, strings.ToLower(scheme) + "://" + strings.Join(cfg.Addrs, ","), nil
}

// isClusterURL reports whether --url names a Redis Cluster.
func isClusterURL(u string) bool {
	u = strings.ToLower(u)
	return strings.HasPrefix(u, "redis+cluster://") || strings.HasPrefix(u, "rediss+cluster://")
}

// logger returns the logger --log-level asks for, or nil.
func (g *global) logger(e *env) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(g.logLevel) {
	case "", "off", "none":
		return nil, nil
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, usagef("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})), nil
}

// server is the pool a command runs with — a single server's Pool, or a
// Cluster of them for a redis+cluster:// URL — and the embedded miniredis
// behind it when there is no --url.
type server struct {
	pool    *redispool.Pool    // nil for a cluster
	cluster *redispool.Cluster // nil for a single server
	cfg     redispool.Config   // for a cluster, its nodes'

	where    string // the server, safe to print
	mini     *miniredis.Miniredis
	sentinel bool // the pool follows a master through Sentinel

	pipelineConns int // Config.PipelineConns (a cluster's nodes')
}

// master is the master the pool connects to now, for a Sentinel URL, or
// "".
func (s *server) master() string {
	if !s.sentinel {
		return ""
	}
	return s.pool.Addr()
}

// GetContext borrows a connection: from the pool, or from the cluster,
// bound to a node by its first keyed command.
func (s *server) GetContext(ctx context.Context) (redis.Conn, error) {
	if s.cluster != nil {
		return s.cluster.GetContext(ctx)
	}
	return s.pool.GetContext(ctx)
}

// Do runs one command: on a connection of the pool, or routed by the
// cluster by its key, redirects followed.
func (s *server) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	if s.cluster != nil {
		return s.cluster.Do(ctx, cmd, args...)
	}
	return s.pool.Do(ctx, cmd, args...)
}

// Ping checks that the server answers; for a cluster, it loads the slot
// map and PINGs every master.
func (s *server) Ping(ctx context.Context) error {
	if s.cluster != nil {
		return s.cluster.Ping(ctx)
	}
	return s.pool.Ping(ctx)
}

// Stats returns the pool's statistics; for a cluster, the sum over its
// nodes' pools.
func (s *server) Stats() redispool.Stats {
	if s.cluster != nil {
		return sumStats(s.cluster.Stats())
	}
	return s.pool.Stats()
}

// sumStats adds up the statistics of a cluster's node pools.
func sumStats(cs redispool.ClusterStats) redispool.Stats {
	var t redispool.Stats
	for _, n := range cs.Nodes {
		t.MaxTotal += n.MaxTotal
		t.Active += n.Active
		t.Idle += n.Idle
		t.Waiting += n.Waiting
		t.Dialing += n.Dialing
		t.Borrows += n.Borrows
		t.WaitCount += n.WaitCount
		t.WaitDuration += n.WaitDuration
		t.Timeouts += n.Timeouts
		t.Created += n.Created
		t.DialErrors += n.DialErrors
		t.Destroyed += n.Destroyed
		t.DestroyedBroken += n.DestroyedBroken
		t.DestroyedUnhealthy += n.DestroyedUnhealthy
		t.DestroyedDirty += n.DestroyedDirty
		t.DestroyedIdle += n.DestroyedIdle
		t.DestroyedLifetime += n.DestroyedLifetime
		t.DestroyedSurplus += n.DestroyedSurplus
		t.DestroyedClosed += n.DestroyedClosed
		t.DestroyedFailover += n.DestroyedFailover
		t.Abandoned += n.Abandoned
		t.MasterChanges += n.MasterChanges
		t.Shared += n.Shared
		t.PipelinedCommands += n.PipelinedCommands
		t.PipelineBatches += n.PipelineBatches
		for i, b := range n.PipelineBatchSizes {
			t.PipelineBatchSizes[i] += b
		}
	}
	return t
}

// openPool creates the pool the flags describe, starting an embedded
// miniredis first when there is no --url. The caller must close it.
func (e *env) openPool(ctx context.Context) (*server, error) {
	log, err := e.logger(e)
	if err != nil {
		return nil, err
	}
	if isClusterURL(e.url) {
		return e.openCluster(ctx, log)
	}
	s := &server{}
	var addr string
	if e.url == "" {
		s.mini = miniredis.NewMiniRedis()
		if err := s.mini.Start(); err != nil {
			return nil, fmt.Errorf("start embedded miniredis: %w", err)
		}
		addr = s.mini.Addr()
	}
	cfg, where, err := e.config(addr)
	if err != nil {
		s.close()
		return nil, err
	}
	s.where = where
	s.sentinel = cfg.Sentinel != nil
	cfg.Logger = log
	s.cfg = cfg
	s.pipelineConns = cfg.PipelineConns
	if log != nil {
		log.Debug(progName+": pool config", "config", cfg.String())
	}
	s.pool, err = redispool.New(ctx, cfg)
	if err != nil {
		s.close()
		if errors.Is(err, redispool.ErrInvalidConfig) {
			return nil, usageError{err}
		}
		return nil, err
	}
	if s.mini != nil {
		fmt.Fprintf(e.stderr, "%s: using an %s (pass --url for a real server)\n", progName, where)
	}
	return s, nil
}

// openCluster creates the Cluster a redis+cluster:// --url describes.
func (e *env) openCluster(ctx context.Context, log *slog.Logger) (*server, error) {
	cfg, where, err := e.clusterConfig()
	if err != nil {
		return nil, err
	}
	cfg.Node.Logger = log
	c, err := redispool.NewCluster(ctx, cfg)
	if err != nil {
		if errors.Is(err, redispool.ErrInvalidConfig) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return &server{cluster: c, where: where, pipelineConns: cfg.Node.PipelineConns}, nil
}

func (s *server) close() {
	if s.pool != nil {
		s.pool.Close()
	}
	if s.cluster != nil {
		s.cluster.Close()
	}
	if s.mini != nil {
		s.mini.Close()
	}
}

// openLoad opens the pool for a workload w, checks that the server
// answers, and serves the pool's metrics if lf asks for it. stop undoes
// it all.
func (e *env) openLoad(ctx context.Context, lf *loadFlags, w *workload) (s *server, stop func(), err error) {
	e.pipelining = lf.pipelining
	s, err = e.openPool(ctx)
	if err != nil {
		return nil, nil, err
	}
	w.pool = s
	w.cluster = s.cluster != nil
	if err := s.firstContact(ctx, s.Ping); err != nil {
		s.close()
		return nil, nil, fmt.Errorf("cannot reach %s: %w", s.where, err)
	}
	stop = s.close
	if lf.metricsAddr != "" {
		stopMetrics, err := serveMetrics(lf.metricsAddr, s, e.stderr)
		if err != nil {
			s.close()
			return nil, nil, err
		}
		stop = func() { stopMetrics(); s.close() }
	}
	return s, stop, nil
}
