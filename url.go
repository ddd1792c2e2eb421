package redispool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
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
	u, err := parseRawURL(rawURL)
	if err != nil {
		return cfg, err
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
		if u.Opaque != "" {
			return bad("no // before the host: want %s://host", u.Scheme)
		}
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

	if err := eachParam(u, func(name, v string) error { return setParam(&cfg, u.Scheme, name, v) }); err != nil {
		return bad("%v", err)
	}
	return cfg, nil
}

// parseRawURL parses a Redis URL. Its errors never contain the password,
// however the URL is malformed.
func parseRawURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the raw URL, password and all
		}
		if strings.Contains(rawURL, "@") {
			// net/url's own message may quote the user info, as in
			// invalid port ":pa" for "redis://u:pa/ss@host".
			return nil, fmt.Errorf("redispool: invalid URL %q: cannot parse it "+
				"(percent-encode '%%', '/', '?', '#' and '@' in the user name and password)", redactURL(rawURL))
		}
		return nil, fmt.Errorf("redispool: invalid URL %q: %v", redactURL(rawURL), err)
	}
	if u.User == nil && strings.Contains(rawURL, "@") || atOutsideAuthority(rawURL) || strings.Contains(rawURL, "#") {
		// A password with an unescaped '/', '?' or '#' moves its '@'
		// out of the user info, and the rest of it into the path, query
		// or fragment: say nothing of them.
		return nil, fmt.Errorf("redispool: invalid URL %q: an '@' outside the user info, or a '#' "+
			"(percent-encode '%%', '/', '?', '#' and '@' in the user name and password)", redactURL(rawURL))
	}
	return u, nil
}

// eachParam calls set with each query parameter of u, in name order so
// that a URL gives the same error every time. A parameter given twice
// is an error.
func eachParam(u *url.URL, set func(name, value string) error) error {
	query := u.Query()
	for _, name := range slices.Sorted(maps.Keys(query)) {
		values := query[name]
		if len(values) != 1 {
			return fmt.Errorf("parameter %q given %d times", name, len(values))
		}
		if err := set(name, values[0]); err != nil {
			return fmt.Errorf("parameter %s: %v", name, err)
		}
	}
	return nil
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

// redactURL hides the userinfo of a URL for error messages: after the
// scheme and "//", everything up to the last '@', since a password may
// contain an unescaped '/', '?' or '#'.
func redactURL(raw string) string {
	start := 0
	if i := strings.IndexByte(raw, ':'); i > 0 && isScheme(raw[:i]) {
		start = i + 1
	}
	if strings.HasPrefix(raw[start:], "//") {
		start += 2
	}
	if at := strings.LastIndex(raw[start:], "@"); at >= 0 {
		return raw[:start] + redacted + raw[start+at:]
	}
	return raw
}

func isScheme(s string) bool {
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// atOutsideAuthority reports whether raw has an '@' after its authority:
// the sign of a password with an unescaped '/', '?' or '#'.
func atOutsideAuthority(raw string) bool {
	i := strings.Index(raw, "//")
	if i < 0 {
		return false
	}
	after := raw[i+2:]
	end := strings.IndexAny(after, "/?#")
	return end >= 0 && strings.LastIndex(after, "@") > end
}

// ParseClusterURL parses a Redis Cluster URL into a ClusterConfig:
//
//	redis+cluster://[[user]:password@]host1:port1[,host2:port2...][?param=value&...]
//	rediss+cluster://...                    (TLS, the server name checked per node)
//
// The hosts are the seeds (Addrs); a port defaults to 6379. ParseURL's
// query parameters set ClusterConfig.Node, except db: a cluster has
// only database 0, and a path other than /0 is an error. The cluster's
// own parameters are max_redirects (an integer), retry_timeout and
// refresh_interval (durations) and read_from_replicas (a boolean).
// Errors never contain the password.
func ParseClusterURL(rawURL string) (ClusterConfig, error) {
	var cfg ClusterConfig
	// net/url takes one host; the seed list takes its place while the
	// rest is parsed as a Redis URL.
	seeds, rest := "", rawURL
	if i := strings.Index(rawURL, "://"); i >= 0 {
		auth := rawURL[i+3:]
		if end := strings.IndexAny(auth, "/?#"); end >= 0 {
			auth = auth[:end]
		}
		at := strings.LastIndex(auth, "@") + 1
		seeds = auth[at:]
		rest = rawURL[:i+3] + auth[:at] + "seeds" + rawURL[i+3+len(auth):]
	}
	u, err := parseRawURL(rest)
	if err != nil {
		return cfg, err
	}
	bad := func(format string, args ...any) (ClusterConfig, error) {
		return ClusterConfig{}, fmt.Errorf("redispool: invalid URL %q: "+format, append([]any{redactURL(rawURL)}, args...)...)
	}
	switch u.Scheme {
	case "redis+cluster", "rediss+cluster":
	case "":
		return bad("no scheme: want redis+cluster:// or rediss+cluster://")
	default:
		return bad("scheme %q: want redis+cluster or rediss+cluster", u.Scheme)
	}
	if u.Opaque != "" || seeds == "" {
		return bad("no seed node: want %s://host:port[,host:port...]", u.Scheme)
	}
	node := &cfg.Node
	if u.User != nil {
		node.Username = u.User.Username()
		node.Password, _ = u.User.Password()
		if node.Username != "" && node.Password == "" {
			return bad("user %q without a password", node.Username)
		}
	}
	for _, h := range strings.Split(seeds, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), "6379" // no port
		}
		if n, err := strconv.Atoi(port); host == "" || strings.ContainsAny(host, "[]/ ") || err != nil || n < 1 || n > 65535 {
			return bad("seed %q: want host:port", h)
		}
		cfg.Addrs = append(cfg.Addrs, net.JoinHostPort(host, port))
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" && p != "0" {
		return bad("database %q in the path: a cluster has only database 0", p)
	}
	if u.Scheme == "rediss+cluster" {
		// No ServerName: each node's pool checks its own host.
		node.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	err = eachParam(u, func(name, v string) error {
		switch name {
		case "max_redirects":
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			cfg.MaxRedirects = n
			return nil
		case "retry_timeout":
			return parseDuration(v, &cfg.RetryTimeout)
		case "refresh_interval":
			return parseDuration(v, &cfg.RefreshInterval)
		case "read_from_replicas":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not a boolean", v)
			}
			cfg.ReadFromReplicas = b
			return nil
		case "db":
			if v != "0" {
				return errors.New("a cluster has only database 0")
			}
			return nil
		}
		return setParam(node, "redis", name, v)
	})
	if err != nil {
		return bad("%v", err)
	}
	return cfg, nil
}
