package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
)

// beCLI makes the test binary behave as the redlock command, so that the
// tests run the very code `go build` makes (and, under -race, race-checked).
const beCLI = "REDLOCK_TEST_BE_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(beCLI) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// requireRedis skips t when redis-server is missing, or fails it when
// QUORUMLOCK_REQUIRE_REDIS=1.
func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := redistest.Binary(); err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("%v, and %s=1", err, redistest.RequireEnv)
		}
		t.Skipf("SKIPPING: %v", err)
	}
}

// redlockCmd returns the redlock command with args, in an environment
// without REDLOCK_NODES unless env sets it.
func redlockCmd(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, nodesEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, beCLI+"=1")
	if os.Getenv("GORACE") == "" {
		// A race-enabled binary otherwise sleeps a second at exit. A race
		// in the child still makes it exit with status 66, which fails
		// the test.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs redlock with args and waits for it, at most limit.
func runCLI(t *testing.T, limit time.Duration, env []string, args ...string) result {
	t.Helper()
	cmd := redlockCmd(t, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return wait(t, cmd, limit, &out, &errb)
}

// lockedBuffer is a buffer a test may read while a command writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func wait(t *testing.T, cmd *exec.Cmd, limit time.Duration, out, errb fmt.Stringer) result {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("redlock %s did not finish within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(cmd.Args[1:], " "), limit, out, errb)
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return r
}

// nodesEnvOf returns the REDLOCK_NODES setting for servers.
func nodesEnvOf(servers []*redistest.Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return nodesEnv + "=" + strings.Join(urls, ",")
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
