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
//	redis+sentinel://[[user]:password@]host1[:port][,host2[:port]...]/master_name[/db][?...]
//	rediss+sentinel://...                   (TLS to the data nodes and the Sentinels)
//
// For redis+sentinel:// the hosts are the Sentinels (the port defaults to
// 26379) and the path names the master they monitor; the user info is the
// data nodes' credentials, as in redis://. The Sentinels' own credentials
// are the parameters sentinel_username and sentinel_password, redacted
// wherever the URL is shown.
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
	// net/url takes one host; a Sentinel URL lists several, which it
	// would misread ("s1,s2:26380,s3" has an invalid port). Parse the URL
	// with a placeholder host and split the list here.
	var sentinelHosts, hostList string
	l := strings.ToLower(rawURL)
	switch {
	case strings.HasPrefix(l, "redis+sentinel://") || strings.HasPrefix(l, "rediss+sentinel://"):
		rawURL, sentinelHosts = cutHostList(rawURL)
	case strings.HasPrefix(l, "redis://") || strings.HasPrefix(l, "rediss://"):
		// A host list here is a cluster's or a set of Sentinels' with
		// the scheme left out. net/url would read "h1:6379,h2" as a bad
		// port, or "h1,h2" as one host to fail at dial: say what it is.
		// Unless the URL is malformed otherwise: an '@' beyond the
		// authority means the "hosts" may be part of a password, and
		// parseRawURL then reports the URL without them.
		if cut, hosts := cutHostList(rawURL); strings.Contains(hosts, ",") {
			if _, err := parseRawURL(cut); err == nil {
				rawURL, hostList = cut, hosts
			}
		}
	}
	u, err := parseRawURL(rawURL)
	if err != nil {
		return cfg, err
	}
	safe := strings.Replace(redactParams(u).Redacted(), hostListPlaceholder, sentinelHosts+hostList, 1)
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
		if hostList != "" {
			return bad("%s:// names one server, not a list of hosts; for a Redis Cluster use %s+cluster://%s "+
				"(ParseClusterURL), for a master found through Sentinels %s+sentinel://sentinel1,sentinel2/master_name",
				u.Scheme, u.Scheme, hostList, u.Scheme)
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
	case "redis+sentinel", "rediss+sentinel":
		if u.Opaque != "" {
			return bad("no // before the Sentinels: want %s://host1,host2/master", u.Scheme)
		}
		sc := &SentinelConfig{}
		for _, a := range strings.Split(sentinelHosts, ",") {
			if a == "" {
				return bad("an empty Sentinel address")
			}
			addr, err := listedAddr("Sentinel address", a, DefaultSentinelPort)
			if err != nil {
				return bad("%v", err)
			}
			sc.Addrs = append(sc.Addrs, addr)
		}
		path := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		sc.MasterName = path[0]
		if sc.MasterName == "" {
			return bad("no master name: want %s://host1,host2/master_name[/db]", u.Scheme)
		}
		if len(path) > 2 {
			return bad("path %q: want /master_name[/db]", u.Path)
		}
		if len(path) == 2 {
			db, err := strconv.Atoi(path[1])
			if err != nil || db < 0 {
				return bad("database %q in the path is not a non-negative number", path[1])
			}
			cfg.DB = db
		}
		if u.Scheme == "rediss+sentinel" {
			// ServerName is filled in per node: the master moves.
			cfg.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			sc.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg.Network = "tcp"
		cfg.Sentinel = sc
	case "unix":
		cfg.Network = "unix"
		cfg.Addr = u.Path
		if cfg.Addr == "" {
			return bad("no socket path")
		}
	case "":
		return bad("no scheme: want redis://, rediss://, unix:// or redis+sentinel://")
	default:
		return bad("scheme %q: want redis, rediss, unix, redis+sentinel or rediss+sentinel", u.Scheme)
	}

	if err := eachParam(u, func(name, v string) error { return setParam(&cfg, u.Scheme, name, v) }); err != nil {
		return bad("%v", err)
	}
	if sc := cfg.Sentinel; sc != nil && sc.Username != "" && sc.Password == "" {
		return bad("sentinel_username %q without a sentinel_password", sc.Username)
	}
	return cfg, nil
}

// hostListPlaceholder stands in for the host list of a Sentinel or
// Cluster URL while net/url parses the rest.
const hostListPlaceholder = "hosts.invalid"

// cutHostList replaces the host list of a URL ("h1,h2:26380,[::1]") with
// a placeholder, since net/url takes one host, and returns the list.
func cutHostList(raw string) (string, string) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw, ""
	}
	start := i + 3
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		start += at + 1
	}
	return raw[:start] + hostListPlaceholder + raw[end:], raw[start:end]
}

// listedAddr validates one address of a host list, what it is for
// naming it in errors, and adds defaultPort when it has none.
func listedAddr(what, a, defaultPort string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// No port, or a bare IPv6 address.
		host, port = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), defaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%s %q: port %q is not a number from 1 to 65535", what, a, port)
	}
	if host == "" || strings.ContainsAny(host, " /[]") {
		return "", fmt.Errorf("%s %q: invalid host %q", what, a, host)
	}
	return net.JoinHostPort(host, port), nil
}

// sentinelPasswordParam is the query parameter that carries the
// Sentinels' password; it is redacted like the user info's.
const sentinelPasswordParam = "sentinel_password"

// redactParams returns u, or a copy with sentinel_password redacted.
func redactParams(u *url.URL) *url.URL {
	q := u.Query()
	if !q.Has(sentinelPasswordParam) {
		return u
	}
	q.Set(sentinelPasswordParam, redacted)
	r := *u
	r.RawQuery = q.Encode()
	return &r
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
	if cfg.Sentinel != nil {
		switch name {
		case "sentinel_username":
			cfg.Sentinel.Username = v
			return nil
		case sentinelPasswordParam:
			cfg.Sentinel.Password = v
			return nil
		}
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
// contain an unescaped '/', '?' or '#'; and the value of
// sentinel_password.
func redactURL(raw string) string {
	if i := strings.Index(raw, sentinelPasswordParam+"="); i >= 0 {
		v := i + len(sentinelPasswordParam) + 1
		end := strings.IndexAny(raw[v:], "&#")
		if end < 0 {
			end = len(raw) - v
		}
		raw = raw[:v] + redacted + raw[v+end:]
	}
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
	rest, seeds := cutHostList(rawURL)
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
		addr, err := listedAddr("seed", h, "6379")
		if err != nil {
			return bad("%v", err)
		}
		cfg.Addrs = append(cfg.Addrs, addr)
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
