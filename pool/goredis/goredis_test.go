package goredis_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/pool/goredis"
)

func TestDialSettings(t *testing.T) {
	p, err := goredis.Dial("redis://app:pw@localhost:6380/3")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	o := p.Client().Options()
	if p.Addr() != "localhost:6380" || o.Addr != "localhost:6380" {
		t.Errorf("Addr() = %q, client Addr %q; want localhost:6380", p.Addr(), o.Addr)
	}
	if o.Username != "app" || o.Password != "pw" || o.DB != 3 {
		t.Errorf("user %q, password %q, db %d; want app, pw, 3", o.Username, o.Password, o.DB)
	}
	if o.MaxRetries > 0 || !o.ContextTimeoutEnabled || o.Protocol != 2 || o.TLSConfig != nil {
		t.Errorf("MaxRetries %d, ContextTimeoutEnabled %v, Protocol %d, TLS %v; want no retries, true, 2, none",
			o.MaxRetries, o.ContextTimeoutEnabled, o.Protocol, o.TLSConfig)
	}
	if o.ReadTimeout != pool.DefaultReadTimeout || o.DialTimeout != pool.DefaultDialTimeout {
		t.Errorf("read timeout %v, dial timeout %v; want pool's defaults", o.ReadTimeout, o.DialTimeout)
	}
	if s := p.String(); strings.Contains(s, "pw") || !strings.Contains(s, "localhost:6380") {
		t.Errorf("String() = %q: want the node without its password", s)
	}
}

func TestDialTLS(t *testing.T) {
	tests := []struct {
		name       string
		cfg        *tls.Config
		serverName string
	}{
		{"default", nil, "redis.internal"},
		{"given config, no server name", &tls.Config{MinVersion: tls.VersionTLS13}, "redis.internal"},
		{"given server name", &tls.Config{ServerName: "other.example"}, "other.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var orig string
			if tc.cfg != nil {
				orig = tc.cfg.ServerName
			}
			p, err := goredis.Dial("rediss://redis.internal:6390", goredis.WithTLSConfig(tc.cfg))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			got := p.Client().Options().TLSConfig
			if got == nil || got.ServerName != tc.serverName {
				t.Fatalf("TLS config %+v, want server name %q", got, tc.serverName)
			}
			if tc.cfg != nil && (got == tc.cfg || tc.cfg.ServerName != orig) {
				t.Error("the caller's TLS config was modified or shared instead of cloned")
			}
		})
	}
}

func TestDialClientOptions(t *testing.T) {
	p, err := goredis.Dial("redis://localhost",
		goredis.WithClientOptions(func(o *redis.Options) { o.PoolSize = 3 }),
		goredis.WithClientOptions(func(o *redis.Options) { o.PoolSize++ }))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if n := p.Client().Options().PoolSize; n != 4 {
		t.Errorf("PoolSize %d, want 4 (options applied in order)", n)
	}
	if p.Addr() != "localhost:6379" {
		t.Errorf("Addr() = %q, want the default port", p.Addr())
	}
}

// TestDialBadURL checks that URL errors are pool.ParseURL's, password hidden.
func TestDialBadURL(t *testing.T) {
	for _, url := range []string{
		"http://u:hunter2@host:6379",
		"redis://u:hunter2@host:99999",
		"redis://u:hunter2@host/db",
		"redis://u:hunter2@host?x=1",
		"redis://:hunter2@",
	} {
		_, err := goredis.Dial(url)
		if err == nil {
			t.Errorf("Dial(%q): no error", pool.Redact(url))
			continue
		}
		_, want := pool.ParseURL(url)
		if want == nil || err.Error() != want.Error() {
			t.Errorf("Dial(%q): %v, want pool.ParseURL's %v", pool.Redact(url), err, want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Dial error shows the password: %v", err)
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := goredis.New(nil); err == nil {
		t.Error("New(nil): no error")
	}
	tests := []struct {
		name string
		opt  redis.Options
		want string // Addr, or "" for an error
	}{
		{"host and port", redis.Options{Addr: "10.0.0.1:6379"}, "10.0.0.1:6379"},
		{"IPv6", redis.Options{Addr: "[::1]:7000"}, "[::1]:7000"},
		{"go-redis default address", redis.Options{}, "localhost:6379"},
		{"unix socket", redis.Options{Network: "unix", Addr: "/tmp/redis.sock"}, ""},
		{"no port", redis.Options{Addr: "host"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(&tc.opt)
			defer c.Close()
			p, err := goredis.New(c)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("New: Addr %q, want an error", p.Addr())
			case tc.want != "" && err != nil:
				t.Errorf("New: %v", err)
			case tc.want != "" && p.Addr() != tc.want:
				t.Errorf("Addr() = %q, want %q", p.Addr(), tc.want)
			}
			if err == nil && p.Client() != c {
				t.Error("Client() is not the client given to New")
			}
		})
	}
}

func TestClosedClient(t *testing.T) {
	p, err := goredis.Dial("redis://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = p.Eval(t.Context(), &pool.Script{Name: "x", Src: "return 1"}, nil)
	if !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Eval on a closed pool: %v, want redis.ErrClosed", err)
	}
}
