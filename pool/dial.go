package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults used by Dial. Commands are bounded by the caller's context first;
// the read and write timeouts are only a backstop for connections used without
// a deadline.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 3 * time.Second
	DefaultWriteTimeout = 3 * time.Second
	DefaultMaxIdle      = 64
	DefaultIdleTimeout  = 4 * time.Minute
)

// DialOption configures Dial.
type DialOption func(*dialConfig)

type dialConfig struct {
	dialTimeout, readTimeout, writeTimeout time.Duration
	maxIdle, maxActive                     int
	idleTimeout                            time.Duration
	tls                                    *tls.Config
}

// WithDialTimeout bounds connecting (TCP, TLS handshake, AUTH, SELECT).
func WithDialTimeout(d time.Duration) DialOption { return func(c *dialConfig) { c.dialTimeout = d } }

// WithReadTimeout sets the backstop read timeout of each connection.
func WithReadTimeout(d time.Duration) DialOption { return func(c *dialConfig) { c.readTimeout = d } }

// WithWriteTimeout sets the write timeout of each connection.
func WithWriteTimeout(d time.Duration) DialOption { return func(c *dialConfig) { c.writeTimeout = d } }

// WithMaxIdle sets how many idle connections are kept (default 64). Set it at
// least to the number of goroutines that lock concurrently.
func WithMaxIdle(n int) DialOption { return func(c *dialConfig) { c.maxIdle = n } }

// WithMaxActive caps the open connections (0, the default, means no cap).
func WithMaxActive(n int) DialOption { return func(c *dialConfig) { c.maxActive = n } }

// WithTLSConfig sets the TLS configuration used for rediss:// URLs (for example
// to trust a private CA or present a client certificate). ServerName defaults
// to the URL's host.
func WithTLSConfig(cfg *tls.Config) DialOption { return func(c *dialConfig) { c.tls = cfg } }

// Endpoint is a parsed node URL.
type Endpoint struct {
	Addr     string // host:port
	TLS      bool   // rediss://
	Username string // ACL user; empty for the default user
	Password string
	DB       int
}

// String returns the URL with the password hidden.
func (e Endpoint) String() string {
	scheme := "redis"
	if e.TLS {
		scheme = "rediss"
	}
	var user string
	switch {
	case e.Username != "" && e.Password != "":
		user = e.Username + ":***@"
	case e.Username != "":
		user = e.Username + "@"
	case e.Password != "":
		user = ":***@"
	}
	return fmt.Sprintf("%s://%s%s/%d", scheme, user, e.Addr, e.DB)
}

// ParseURL parses redis://[user:pass@]host[:port][/db] and the TLS form
// rediss://. The port defaults to 6379 and the database to 0. Errors never
// repeat the password.
func ParseURL(raw string) (Endpoint, error) {
	shown := Redact(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error's text can quote the part that failed, password
		// included: say what is wrong in words of our own.
		return Endpoint{}, fmt.Errorf("pool: node URL %q: %s", shown, urlProblem(err))
	}
	var ep Endpoint
	switch u.Scheme {
	case "redis":
	case "rediss":
		ep.TLS = true
	default:
		return Endpoint{}, fmt.Errorf("pool: node URL %q: scheme must be redis:// or rediss://", shown)
	}
	if u.Opaque != "" || u.Host == "" {
		return Endpoint{}, fmt.Errorf("pool: node URL %q: missing host", shown)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return Endpoint{}, fmt.Errorf("pool: node URL %q: missing host", shown)
	}
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return Endpoint{}, fmt.Errorf("pool: node URL %q: invalid port %q", shown, port)
	}
	ep.Addr = net.JoinHostPort(host, port)
	if _, _, err := net.SplitHostPort(ep.Addr); err != nil || strings.ContainsAny(host, "[]/ ") {
		return Endpoint{}, fmt.Errorf("pool: node URL %q: invalid host", shown)
	}
	if u.User != nil {
		ep.Username = u.User.Username()
		ep.Password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			// The path is not quoted: with a "/" in the user name it holds
			// the password.
			return Endpoint{}, fmt.Errorf("pool: node URL %q: the database must be a non-negative number", shown)
		}
		ep.DB = db
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, fmt.Errorf("pool: node URL %q: query parameters and fragments are not supported", shown)
	}
	return ep, nil
}

// urlProblem describes a url.Parse failure without quoting the URL.
func urlProblem(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "invalid port"):
		return "invalid port"
	case strings.Contains(msg, "escape"):
		return "invalid percent-escape"
	case strings.Contains(msg, "control character"):
		return "control character in URL"
	case strings.Contains(msg, "first path segment"):
		return "scheme must be redis:// or rediss:// (without one, the first path segment cannot contain a colon)"
	case strings.Contains(msg, "missing protocol scheme"):
		return "scheme must be redis:// or rediss://"
	case strings.Contains(msg, "missing ']'"):
		return "missing ']' in host"
	}
	return "invalid host or URL syntax"
}

// Redact returns raw with any password in it replaced by ***, for messages.
func Redact(raw string) string {
	schemeEnd := strings.Index(raw, "://")
	rest := raw
	prefix := ""
	if schemeEnd >= 0 {
		prefix, rest = raw[:schemeEnd+3], raw[schemeEnd+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	userinfo := rest[:at]
	if colon := strings.Index(userinfo, ":"); colon >= 0 {
		userinfo = userinfo[:colon] + ":***"
	}
	return prefix + userinfo + rest[at:]
}

// Dial returns a Pool for the node at rawURL (see ParseURL). It does not
// connect: the first command does, so an unreachable node is reported by the
// operation that needed it, naming the node.
func Dial(rawURL string, opts ...DialOption) (*Redigo, error) {
	ep, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return DialEndpoint(ep, opts...)
}

// DialEndpoint is Dial for an already parsed URL.
func DialEndpoint(ep Endpoint, opts ...DialOption) (*Redigo, error) {
	cfg := dialConfig{
		dialTimeout:  DefaultDialTimeout,
		readTimeout:  DefaultReadTimeout,
		writeTimeout: DefaultWriteTimeout,
		maxIdle:      DefaultMaxIdle,
		idleTimeout:  DefaultIdleTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.dialTimeout <= 0 || cfg.readTimeout < 0 || cfg.writeTimeout < 0 || cfg.maxIdle < 0 || cfg.maxActive < 0 {
		return nil, errors.New("pool: dial options must not be negative, and the dial timeout must be positive")
	}
	dopts := []redis.DialOption{
		redis.DialConnectTimeout(cfg.dialTimeout),
		redis.DialReadTimeout(cfg.readTimeout),
		redis.DialWriteTimeout(cfg.writeTimeout),
		redis.DialDatabase(ep.DB),
	}
	if ep.Username != "" {
		dopts = append(dopts, redis.DialUsername(ep.Username))
	}
	if ep.Password != "" {
		dopts = append(dopts, redis.DialPassword(ep.Password))
	}
	if ep.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.tls != nil {
			tc = cfg.tls.Clone()
		}
		if tc.ServerName == "" {
			host, _, _ := net.SplitHostPort(ep.Addr)
			tc.ServerName = host
		}
		// The handshake is done here rather than by redigo, which bounds it
		// by a timeout of its own (10s) and not by the caller's context: a
		// hung node, or a plain-text port that never answers a ClientHello,
		// would hold the caller past its deadline.
		nd := &net.Dialer{Timeout: cfg.dialTimeout, KeepAlive: 5 * time.Minute}
		dopts = append(dopts, redis.DialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout)
			defer cancel()
			raw, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, tc)
			if err := c.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				var rec tls.RecordHeaderError
				if errors.As(err, &rec) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("TLS handshake failed (is %s a TLS port?): %w", addr, err)
				}
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			return c, nil
		}))
	}
	shown := ep.String()
	rp := &redis.Pool{
		MaxIdle:     cfg.maxIdle,
		MaxActive:   cfg.maxActive,
		IdleTimeout: cfg.idleTimeout,
		Wait:        cfg.maxActive > 0,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			c, err := redis.DialContext(ctx, "tcp", ep.Addr, dopts...)
			if err != nil {
				if !ep.TLS && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
					// A TLS port drops a client that speaks plain text.
					err = fmt.Errorf("%w (if this is a TLS port, use rediss://)", err)
				}
				return nil, fmt.Errorf("connecting to %s: %w", shown, scrub(err, ep.Password))
			}
			return c, nil
		},
	}
	return &Redigo{addr: ep.Addr, rp: rp, readTimeout: cfg.readTimeout}, nil
}

// scrub removes a password from an error's text, should a driver ever echo it.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "***"))
}
