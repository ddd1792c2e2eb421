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
// ping_after_idle, eviction_interval and abandoned_timeout (Go
// durations such as "250ms", or whole seconds), max_total, max_idle and
// min_idle (integers), fail_fast and fifo (booleans). An unknown
// parameter is an error, so that a typo does not pass silently. Errors
// never contain the password.
func ParseURL(rawURL string) (Config, error) {
	var cfg Config
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the raw URL, password and all
		}
		if strings.Contains(rawURL, "@") {
			// net/url's own message may quote the user info, as in
			// invalid port ":pa" for "redis://u:pa/ss@host".
			return cfg, fmt.Errorf("redispool: invalid URL %q: cannot parse it "+
				"(percent-encode '%%', '/', '?', '#' and '@' in the user name and password)", redactURL(rawURL))
		}
		return cfg, fmt.Errorf("redispool: invalid URL %q: %v", redactURL(rawURL), err)
	}
	safe := u.Redacted()
	if u.User == nil && strings.Contains(rawURL, "@") || atOutsideAuthority(rawURL) || strings.Contains(rawURL, "#") {
		// A password with an unescaped '/', '?' or '#' moves its '@'
		// out of the user info, and the rest of it into the path, query
		// or fragment: say nothing of them.
		return cfg, fmt.Errorf("redispool: invalid URL %q: an '@' outside the user info, or a '#' "+
			"(percent-encode '%%', '/', '?', '#' and '@' in the user name and password)", redactURL(rawURL))
	}
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

	query := u.Query()
	for _, name := range slices.Sorted(maps.Keys(query)) { // the same error every time
		values := query[name]
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
		"abandoned_timeout":  &cfg.AbandonedTimeout,
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
