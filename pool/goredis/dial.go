package goredis

import (
	"crypto/tls"
	"net"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/quorumlock/quorumlock/pool"
)

// Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	tls    *tls.Config
	client []func(*redis.Options)
}

// WithTLSConfig sets the TLS configuration used for rediss:// URLs (for
// example to trust a private CA or present a client certificate). ServerName
// defaults to the URL's host. It is ignored for redis:// URLs.
func WithTLSConfig(cfg *tls.Config) Option { return func(c *dialConfig) { c.tls = cfg } }

// WithClientOptions lets f change the go-redis options Dial built from the
// URL (pool size, timeouts, hooks...) before the client is created. Options
// apply in order. Changing Addr changes the node the Pool names and dials.
func WithClientOptions(f func(*redis.Options)) Option {
	return func(c *dialConfig) { c.client = append(c.client, f) }
}

// Dial returns a Pool for the node at rawURL, parsed by pool.ParseURL:
// redis://[user:pass@]host[:port][/db] or rediss:// for TLS, with the same
// rules and the same password redaction in errors as pool.Dial. It does not
// connect: the first command does, so an unreachable node is reported by the
// operation that needed it.
//
// The client is set up for locking: connecting, reading and writing are
// bounded as with pool.Dial (pool.DefaultDialTimeout, DefaultReadTimeout,
// DefaultWriteTimeout), a context's deadline bounds the socket
// (ContextTimeoutEnabled), failed commands and dials are not retried (the
// coordinator decides what a failed node means, and a retried script may
// answer differently), and it speaks RESP2 without CLIENT SETINFO or
// maintenance notifications, which a standalone node does not need.
func Dial(rawURL string, opts ...Option) (*Pool, error) {
	ep, err := pool.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var cfg dialConfig
	for _, o := range opts {
		o(&cfg)
	}
	ro := &redis.Options{
		Network:               "tcp",
		Addr:                  ep.Addr,
		Username:              ep.Username,
		Password:              ep.Password,
		DB:                    ep.DB,
		Protocol:              2,
		DialTimeout:           pool.DefaultDialTimeout,
		ReadTimeout:           pool.DefaultReadTimeout,
		WriteTimeout:          pool.DefaultWriteTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		ConnMaxIdleTime:       pool.DefaultIdleTimeout,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
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
		ro.TLSConfig = tc
	}
	for _, f := range cfg.client {
		f(ro)
	}
	c := redis.NewClient(ro)
	p, err := New(c)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	if p.addr == ep.Addr {
		p.shown = ep.String()
	}
	p.password = ro.Password
	return p, nil
}
