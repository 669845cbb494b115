package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
)

func dial(t *testing.T, s *redistest.Server) (redis.Conn, error) {
	t.Helper()
	return redis.Dial("tcp", s.Addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second))
}

func mustDo(t *testing.T, s *redistest.Server, cmd string, args ...any) any {
	t.Helper()
	c, err := dial(t, s)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return reply
}

func TestStart(t *testing.T) {
	servers := redistest.Start(t, 3)
	seen := map[string]bool{}
	for _, s := range servers {
		if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Addr != fmt.Sprintf("127.0.0.1:%d", s.Port) {
			t.Errorf("Addr %q, Port %d", s.Addr, s.Port)
		}
		if s.URL() != "redis://"+s.Addr {
			t.Errorf("URL() = %q", s.URL())
		}
		if seen[s.Addr] {
			t.Errorf("two servers on %s", s.Addr)
		}
		seen[s.Addr] = true
		if !s.Running() {
			t.Errorf("%s not running", s.Addr)
		}
		if st, err := os.Stat(s.Dir); err != nil || !st.IsDir() {
			t.Errorf("Dir %q: %v", s.Dir, err)
		}
		if pong, _ := redis.String(mustDo(t, s, "PING"), nil); pong != "PONG" {
			t.Errorf("PING = %q", pong)
		}
		// No persistence unless asked for.
		if save, _ := redis.Strings(mustDo(t, s, "CONFIG", "GET", "save"), nil); len(save) != 2 || save[1] != "" {
			t.Errorf("CONFIG GET save = %q", save)
		}
	}
}

// Kill loses the data; the server comes back on the same address, empty.
func TestKillAndStart(t *testing.T) {
	s := redistest.Start(t, 1)[0]
	mustDo(t, s, "SET", "k", "v")
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Error("Running() after Kill")
	}
	if _, err := dial(t, s); err == nil {
		t.Error("a killed server accepts connections")
	}
	if err := s.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	addr := s.Addr
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr {
		t.Errorf("restarted on %s, was %s", s.Addr, addr)
	}
	if n, _ := redis.Int(mustDo(t, s, "EXISTS", "k"), nil); n != 0 {
		t.Error("data survived a kill without persistence")
	}
	if err := s.Start(); err == nil {
		t.Error("Start of a running server succeeded")
	}
}

// Stop (SIGTERM) lets Redis save when persistence is on.
func TestStopWithPersistence(t *testing.T) {
	s := redistest.Start(t, 1, "--appendonly", "yes")[0]
	mustDo(t, s, "SET", "k", "v")
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if v, _ := redis.String(mustDo(t, s, "GET", "k"), nil); v != "v" {
		t.Errorf("GET after Stop and Start with AOF = %q, want v", v)
	}
}

// A paused server keeps its connections but answers nothing until resumed;
// Stop and Kill work on a paused server.
func TestPauseResume(t *testing.T) {
	servers := redistest.Start(t, 2)
	s := servers[0]
	c, err := dial(t, s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if _, err := redis.DoWithTimeout(c, 100*time.Millisecond, "PING"); err == nil {
		t.Fatal("a paused server answered")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if pong, err := redis.String(mustDo(t, s, "PING"), nil); err != nil || pong != "PONG" {
		t.Errorf("PING after Resume = %q, %v", pong, err)
	}
	for _, stop := range []func(*redistest.Server) error{(*redistest.Server).Stop, (*redistest.Server).Kill} {
		s := servers[1]
		if !s.Running() {
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- stop(s) }()
		select {
		case err := <-done:
			if err != nil || s.Running() {
				t.Errorf("stopping a paused server: %v, running %v", err, s.Running())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("stopping a paused server hung")
		}
	}
	if err := servers[1].Pause(); err == nil {
		t.Error("Pause of a stopped server succeeded")
	}
}

func TestPools(t *testing.T) {
	servers := redistest.Start(t, 2)
	pools := redistest.Pools(t, servers, pool.WithMaxIdle(1))
	for i, p := range pools {
		if p.Addr() != servers[i].Addr {
			t.Errorf("pool %d: Addr %s, server %s", i, p.Addr(), servers[i].Addr)
		}
		reply, err := p.Eval(context.Background(), &pool.Script{Name: "one", Src: "return 1"}, nil)
		if err != nil || reply != int64(1) {
			t.Errorf("pool %d: Eval = %v, %v", i, reply, err)
		}
	}
}

func TestBinary(t *testing.T) {
	t.Setenv("QUORUMLOCK_REDIS_SERVER", "/opt/redis/bin/redis-server")
	if bin, err := redistest.Binary(); err != nil || bin != "/opt/redis/bin/redis-server" {
		t.Errorf("Binary() with QUORUMLOCK_REDIS_SERVER = %q, %v", bin, err)
	}
	t.Setenv("QUORUMLOCK_REDIS_SERVER", "")
	t.Setenv("PATH", t.TempDir())
	if _, err := redistest.Binary(); !errors.Is(err, redistest.ErrNoBinary) {
		t.Errorf("Binary() without redis-server = %v, want ErrNoBinary", err)
	}
	if _, err := redistest.StartServer(t.TempDir()); !errors.Is(err, redistest.ErrNoBinary) {
		t.Errorf("StartServer without redis-server = %v, want ErrNoBinary", err)
	}
}

// fakeTB records what Start does with its testing.TB.
type fakeTB struct {
	testing.TB // the real test, for TempDir and Cleanup
	mu         sync.Mutex
	skipped    string
	failed     string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// Without redis-server, Start skips with a loud message, or fails when
// QUORUMLOCK_REQUIRE_REDIS=1.
func TestStartWithoutBinary(t *testing.T) {
	t.Setenv("QUORUMLOCK_REDIS_SERVER", "")
	t.Setenv("PATH", t.TempDir())
	for _, require := range []string{"", "1"} {
		t.Setenv(redistest.RequireEnv, require)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			redistest.Start(f, 1)
		}()
		<-done
		switch {
		case require == "1" && (f.failed == "" || f.skipped != ""):
			t.Errorf("%s=1: failed %q, skipped %q; want a failure", redistest.RequireEnv, f.failed, f.skipped)
		case require == "" && (f.skipped == "" || f.failed != ""):
			t.Errorf("%s unset: failed %q, skipped %q; want a skip", redistest.RequireEnv, f.failed, f.skipped)
		}
		msg := f.failed + f.skipped
		if !strings.Contains(msg, "redis-server") {
			t.Errorf("the message does not say what is missing: %q", msg)
		}
	}
}

// A server started with a password answers PING with -NOAUTH: it is up.
func TestStartServerWithPassword(t *testing.T) {
	if _, err := redistest.Binary(); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	var s *redistest.Server
	go func() {
		var err error
		s, err = redistest.StartServer(t.TempDir(), "--requirepass", "pw")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Kill()
	case <-time.After(12 * time.Second):
		t.Fatal("a server started with --requirepass is not ready after 12s")
	}
}
