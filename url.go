package redispool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParseURL parses a Redis URL into a Config:
//
//	redis://[[user]:password@]host[:port][/db][?param=value&...]
//	rediss://...                            (TLS, verifying the server against the system roots)
//	unix://[[user]:password@]/path/to/socket[?db=N&...]
//
// The port defaults to 6379 and the host to localhost. Query parameters
// set the remaining fields: db (unix only; use the path for redis://),
// client_name, dial_timeout, read_timeout, write_timeout,
// borrow_timeout, check_timeout, max_conn_lifetime, max_conn_idle_time,
// ping_after_idle and eviction_interval (Go durations such as "250ms",
// or whole seconds), max_total, max_idle and min_idle (integers),
// fail_fast and fifo (booleans). An unknown parameter is an error, so
// that a typo does not pass silently. Errors never contain the
// password.
func ParseURL(rawURL string) (Config, error) {
	var cfg Config
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the raw URL, password and all
		}
		return cfg, fmt.Errorf("redispool: invalid URL %q: %v", redactURL(rawURL), err)
	}
	safe := u.Redacted()
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("redispool: invalid URL %q: "+format, append([]any{safe}, args...)...)
	}

	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
		if cfg.Username != "" && cfg.Password == "" {
			return bad("user %q without a password", cfg.Username)
		}
	}

	switch u.Scheme {
	case "redis", "rediss":
		cfg.Network = "tcp"
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "localhost"
		}
		if port == "" {
			port = "6379"
		}
		cfg.Addr = net.JoinHostPort(host, port)
		if p := strings.TrimPrefix(u.Path, "/"); p != "" {
			db, err := strconv.Atoi(p)
			if err != nil || db < 0 {
				return bad("database %q in the path is not a non-negative number", p)
			}
			cfg.DB = db
		}
		if u.Scheme == "rediss" {
			cfg.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
	case "unix":
		cfg.Network = "unix"
		cfg.Addr = u.Path
		if cfg.Addr == "" {
			return bad("no socket path")
		}
	case "":
		return bad("no scheme: want redis://, rediss:// or unix://")
	default:
		return bad("scheme %q: want redis, rediss or unix", u.Scheme)
	}

	for name, values := range u.Query() {
		if len(values) != 1 {
			return bad("parameter %q given %d times", name, len(values))
		}
		if err := setParam(&cfg, u.Scheme, name, values[0]); err != nil {
			return bad("parameter %s: %v", name, err)
		}
	}
	return cfg, nil
}

func setParam(cfg *Config, scheme, name, v string) error {
	durations := map[string]*time.Duration{
		"dial_timeout":       &cfg.DialTimeout,
		"read_timeout":       &cfg.ReadTimeout,
		"write_timeout":      &cfg.WriteTimeout,
		"borrow_timeout":     &cfg.BorrowTimeout,
		"check_timeout":      &cfg.CheckTimeout,
		"max_conn_lifetime":  &cfg.MaxConnLifetime,
		"max_conn_idle_time": &cfg.MaxConnIdleTime,
		"ping_after_idle":    &cfg.PingAfterIdle,
		"eviction_interval":  &cfg.EvictionInterval,
	}
	ints := map[string]*int{
		"max_total": &cfg.MaxTotal,
		"max_idle":  &cfg.MaxIdle,
		"min_idle":  &cfg.MinIdle,
	}
	bools := map[string]*bool{
		"fail_fast": &cfg.FailFast,
		"fifo":      &cfg.FIFO,
	}
	if d, ok := durations[name]; ok {
		return parseDuration(v, d)
	}
	if n, ok := ints[name]; ok {
		i, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*n = i
		return nil
	}
	if b, ok := bools[name]; ok {
		x, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", v)
		}
		*b = x
		return nil
	}
	switch name {
	case "client_name":
		cfg.ClientName = v
		return nil
	case "db":
		if scheme != "unix" {
			return errors.New("use the URL path for the database, as in redis://host:6379/2")
		}
		db, err := strconv.Atoi(v)
		if err != nil || db < 0 {
			return fmt.Errorf("%q is not a non-negative integer", v)
		}
		cfg.DB = db
		return nil
	}
	return errors.New("unknown parameter")
}

// parseDuration accepts a Go duration ("250ms", "-1s") or whole seconds.
func parseDuration(v string, d *time.Duration) error {
	if n, err := strconv.Atoi(v); err == nil {
		*d = time.Duration(n) * time.Second
		return nil
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration (as in 500ms or 3s) or a number of seconds", v)
	}
	*d = x
	return nil
}

// redactURL hides the userinfo of a URL that could not be parsed, for
// error messages.
func redactURL(raw string) string {
	scheme := strings.Index(raw, "://")
	if scheme < 0 {
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return redacted + raw[at:]
		}
		return raw
	}
	rest := raw[scheme+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:scheme+3] + redacted + rest[at:]
	}
	return raw
}
