package pool_test

// The redigo adapter against real redis-server processes.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
)

// hangBound guards calls that must return; it is not a speed requirement.
const hangBound = 10 * time.Second

var (
	echo    = &pool.Script{Name: "echo", Src: `return {KEYS[1], ARGV[1], tonumber(ARGV[2]), {1, 2}}`}
	setGet  = &pool.Script{Name: "set-get", Src: `redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])`}
	fails   = &pool.Script{Name: "fails", Src: `return redis.error_reply('WRONGTYPE not a string')`}
	invalid = &pool.Script{Name: "invalid", Src: `return (`}
)

func dial(t *testing.T, url string, opts ...pool.DialOption) *pool.Redigo {
	t.Helper()
	p, err := pool.Dial(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func eval(t *testing.T, p pool.Pool, s *pool.Script, keys []string, args ...any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	return p.Eval(ctx, s, keys, args...)
}

// commandCalls returns how many times cmd ran on s since its start.
func commandCalls(t *testing.T, s *redistest.Server, cmd string) int {
	t.Helper()
	c, err := redis.Dial("tcp", s.Addr, redis.DialReadTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			return n
		}
	}
	return 0
}

func TestRedigoEval(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL())
	reply, err := eval(t, p, echo, []string{"k"}, "v", 42)
	if err != nil {
		t.Fatal(err)
	}
	arr, ok := reply.([]any)
	if !ok || len(arr) != 4 {
		t.Fatalf("reply %#v", reply)
	}
	if string(arr[0].([]byte)) != "k" || string(arr[1].([]byte)) != "v" || arr[2] != int64(42) {
		t.Errorf("reply %#v", arr)
	}
	if nested, ok := arr[3].([]any); !ok || len(nested) != 2 || nested[0] != int64(1) {
		t.Errorf("nested reply %#v", arr[3])
	}
	if reply, err := eval(t, p, setGet, []string{"k"}, "hello"); err != nil || string(reply.([]byte)) != "hello" {
		t.Errorf("set-get = %#v, %v", reply, err)
	}
	// The script is loaded once and then run by SHA.
	for range 5 {
		if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := commandCalls(t, srv, "script|load"); n != 2 {
		t.Errorf("SCRIPT LOAD ran %d times for two scripts", n)
	}
	if n := commandCalls(t, srv, "eval"); n != 0 {
		t.Errorf("EVAL with the source ran %d times", n)
	}
}

func TestRedigoErrorReplies(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL())
	_, err := eval(t, p, fails, []string{"k"})
	var se *pool.ServerError
	if !errors.As(err, &se) || !errors.Is(err, pool.ErrWrongType) {
		t.Errorf("error reply = %v, want a *ServerError matching ErrWrongType", err)
	}
	_, err = eval(t, p, invalid, nil)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "loading script invalid") {
		t.Errorf("a script that does not compile = %v", err)
	}
	// A Lua error at run time.
	_, err = eval(t, p, &pool.Script{Name: "incr-string", Src: `redis.call('SET', KEYS[1], 'x'); return redis.call('INCR', KEYS[1])`}, []string{"s"})
	if !errors.As(err, &se) {
		t.Errorf("a runtime error = %v (%T), want a *ServerError", err, err)
	}
}

// Scripts are run by the SHA the server returned; when the server has lost
// them (SCRIPT FLUSH) the pool loads them again and retries once.
func TestRedigoNoScriptAfterFlush(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL())
	if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Redis().Get().Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
		t.Fatalf("Eval after SCRIPT FLUSH: %v", err)
	}
	if n := commandCalls(t, srv, "script|load"); n != 2 {
		t.Errorf("SCRIPT LOAD ran %d times, want 2 (first use, after NOSCRIPT)", n)
	}
}

// After a restart the server has lost the scripts; the pool reloads them.
func TestRedigoNoScriptAfterRestart(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	// No idle connections survive the restart: this test is about scripts,
	// TestRedigoStaleConnectionAfterRestart about connections.
	p := dial(t, srv.URL(), pool.WithMaxIdle(0))
	if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
		t.Fatalf("Eval after a restart: %v", err)
	}
	if n := commandCalls(t, srv, "script|load"); n != 1 {
		t.Errorf("SCRIPT LOAD ran %d times since the restart, want 1", n)
	}
}

// An idle pooled connection to a server that has restarted is dead; the
// first call on it fails with a bare EOF instead of using a new connection.
// After a node restart each idle connection costs one failed vote.
func TestRedigoStaleConnectionAfterRestart(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL())
	if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
		t.Fatalf("first Eval after a restart: %v", err)
	}
}

// Every command is bounded by the caller's context, also on a node that
// accepts connections but never answers (SIGSTOP): with the backstop
// timeouts off, only ctx can end the call.
func TestRedigoHonoursContextOnPausedNode(t *testing.T) {
	noBackstop := []pool.DialOption{pool.WithReadTimeout(0), pool.WithWriteTimeout(0)}
	for _, tc := range []struct {
		name     string
		password string
		url      func(s *redistest.Server) string
		warm     bool // a pooled connection exists before the pause
		cancel   bool // end ctx by cancel rather than by deadline
	}{
		{name: "pooled connection, deadline", warm: true},
		{name: "pooled connection, cancel", warm: true, cancel: true},
		{name: "new connection", warm: false},
		{name: "new connection with AUTH", password: "pw", url: func(s *redistest.Server) string { return "redis://:pw@" + s.Addr }},
		{name: "new connection with SELECT", url: func(s *redistest.Server) string { return s.URL() + "/2" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, 1)[0]
			if tc.password != "" {
				requirePass(t, srv, tc.password)
			}
			url := srv.URL()
			if tc.url != nil {
				url = tc.url(srv)
			}
			p := dial(t, url, noBackstop...)
			if tc.warm {
				if _, err := eval(t, p, echo, []string{"k"}, "v", 1); err != nil {
					t.Fatal(err)
				}
			}
			if err := srv.Pause(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Resume() })
			calls := map[string]func(ctx context.Context) error{
				"Eval": func(ctx context.Context) error { _, err := p.Eval(ctx, echo, []string{"k"}, "v", 1); return err },
				"Pipeline": func(ctx context.Context) error {
					_, err := p.Pipeline(ctx, []pool.Cmd{{Name: "SET", Args: []any{"k", "v"}}, {Name: "PTTL", Args: []any{"k"}}})
					return err
				},
			}
			for op, call := range calls {
				var ctx context.Context
				var cancel context.CancelFunc
				want := context.DeadlineExceeded
				if tc.cancel {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(50*time.Millisecond, cancel)
					want = context.Canceled
				} else {
					ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
				}
				done := make(chan error, 1)
				go func() { done <- call(ctx) }()
				select {
				case err := <-done:
					// With a deadline, redigo also sets it as the socket's
					// read deadline, and the socket's timeout may be what
					// is reported (see TestRedigoDeadlineReportedAsContextError).
					var ne net.Error
					if !errors.Is(err, want) && !(want == context.DeadlineExceeded && errors.As(err, &ne) && ne.Timeout()) {
						t.Errorf("%s on a paused node = %v, want %v", op, err, want)
					}
				case <-time.After(hangBound):
					t.Fatalf("%s on a paused node ignored its context", op)
				}
				cancel()
			}
		})
	}
}

// When the caller's deadline ends a call, the error should match
// context.DeadlineExceeded, as the context's own error does; redigo reports
// the socket's "i/o timeout" instead when its read deadline fires first.
func TestRedigoDeadlineReportedAsContextError(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	// No idle connection: every call dials, and which timer wins is a race,
	// so several calls are made.
	p := dial(t, srv.URL(), pool.WithReadTimeout(0), pool.WithWriteTimeout(0), pool.WithMaxIdle(0))
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := p.Eval(ctx, echo, []string{"k"}, "v", 1)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d: Eval past its deadline = %v, want context.DeadlineExceeded", i, err)
		}
	}
}

// Passwords and ACL users are used, and a wrong password is not repeated in
// the error.
func TestRedigoAuth(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	requirePass(t, srv, "defaultpw")
	admin := dial(t, "redis://:defaultpw@"+srv.Addr)
	if _, err := admin.Redis().Get().Do("ACL", "SETUSER", "locker", "on", ">lockerpw", "~*", "+@all"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url, secret string
		ok          bool
	}{
		{"redis://:defaultpw@" + srv.Addr, "defaultpw", true},
		{"redis://locker:lockerpw@" + srv.Addr, "lockerpw", true},
		{"redis://locker:Wr0ngPassw0rd@" + srv.Addr, "Wr0ngPassw0rd", false},
		{"redis://:Wr0ngPassw0rd@" + srv.Addr, "Wr0ngPassw0rd", false},
		{srv.URL(), "", false},
	} {
		_, err := eval(t, dial(t, tc.url), echo, []string{"k"}, "v", 1)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Eval = %v, want ok=%v", pool.Redact(tc.url), err, tc.ok)
		}
		if err != nil && tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%s: the error shows the password: %v", pool.Redact(tc.url), err)
		}
	}
}

// requirePass sets the default user's password on a running server
// (redistest cannot start one with --requirepass: see redistest_test.go).
func requirePass(t *testing.T, srv *redistest.Server, pw string) {
	t.Helper()
	c, err := redis.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("CONFIG", "SET", "requirepass", pw); err != nil {
		t.Fatal(err)
	}
}

// The database of the URL is selected on every connection.
func TestRedigoDatabase(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL()+"/3")
	if _, err := eval(t, p, setGet, []string{"db-key"}, "in-3"); err != nil {
		t.Fatal(err)
	}
	c, err := redis.Dial("tcp", srv.Addr, redis.DialDatabase(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := redis.String(c.Do("GET", "db-key")); err != nil || v != "in-3" {
		t.Errorf("GET in database 3 = %q, %v", v, err)
	}
	if _, err := c.Do("SELECT", 0); err != nil {
		t.Fatal(err)
	}
	if n, _ := redis.Int(c.Do("EXISTS", "db-key")); n != 0 {
		t.Errorf("the key landed in database 0")
	}
}

// rediss:// speaks TLS, verifies the server against the configured roots and
// uses the URL's host as the server name.
func TestRedigoTLS(t *testing.T) {
	dir := t.TempDir()
	roots := writeTLSFiles(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := redistest.Start(t, 1,
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "server.pem"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
		"--tls-auth-clients", "no")[0]
	_ = srv
	for _, tc := range []struct {
		url string
		cfg *tls.Config
		ok  bool
	}{
		{fmt.Sprintf("rediss://127.0.0.1:%d", tlsPort), &tls.Config{RootCAs: roots}, true},
		{fmt.Sprintf("rediss://localhost:%d", tlsPort), &tls.Config{RootCAs: roots}, true},
		{fmt.Sprintf("rediss://127.0.0.1:%d", tlsPort), nil, false}, // unknown authority
		{fmt.Sprintf("rediss://127.0.0.1:%d", tlsPort), &tls.Config{RootCAs: roots, ServerName: "other.example"}, false},
	} {
		var opts []pool.DialOption
		if tc.cfg != nil {
			opts = append(opts, pool.WithTLSConfig(tc.cfg))
		}
		_, err := eval(t, dial(t, tc.url, opts...), echo, []string{"k"}, "v", 1)
		if (err == nil) != tc.ok {
			t.Errorf("%s (server name %q): Eval = %v, want ok=%v", tc.url, serverName(tc.cfg), err, tc.ok)
		}
	}
}

func serverName(cfg *tls.Config) string {
	if cfg == nil {
		return ""
	}
	return cfg.ServerName
}

// writeTLSFiles writes a CA and a server certificate for 127.0.0.1 and
// localhost to dir, and returns the CA as a pool.
func writeTLSFiles(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "quorumlock test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "redis"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return roots
}
