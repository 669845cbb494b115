package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
)

var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// assertClosed fails t for every address of out that still accepts
// connections: a redis-server the demo started and did not kill.
func assertClosed(t *testing.T, out string) {
	t.Helper()
	addrs := addrRE.FindAllString(out, -1)
	if len(addrs) == 0 {
		t.Fatalf("no node address in the output:\n%s", out)
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("node %s still accepts connections after the demo exited", a)
		}
	}
}

func TestDemoStartsKillsAndCleansUpItsNodes(t *testing.T) {
	requireRedis(t)
	r := runCLI(t, 2*time.Minute, nil, "demo")
	if r.code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"5 local redis-server processes, quorum 3",
		"without the lock: sold ",
		"OVERSOLD",
		"with the lock:    sold 10 of 10: exactly the stock (stock key now 0",
		"killed after sale 5; 4 of 5 nodes left, quorum 3",
		"obtain latency: median ",
		"verdict: OK",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	assertClosed(t, r.stdout)
}

func TestDemoOnGivenNodesCutsOffInsteadOfKilling(t *testing.T) {
	servers := redistest.Start(t, 3)
	r := runCLI(t, 2*time.Minute, []string{nodesEnvOf(servers)}, "demo", "--workers", "20", "--stock", "6")
	if r.code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"3 given nodes, quorum 2",
		"sold 6 of 6: exactly the stock",
		"cut off from this process after sale 3; 2 of 3 nodes left, quorum 2",
		"verdict: OK",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// The given nodes still run, and hold nothing but lock keys about to
	// expire (the cut-off node could not be told to release its copy) and
	// the library's own bookkeeping.
	for _, s := range servers {
		c, err := redis.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatalf("given node %s is down after the demo: %v", s.Addr, err)
		}
		for _, k := range userKeys(t, c) {
			pttl, err := redis.Int64(c.Do("PTTL", k))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(k, "quorumlock:demo:") || pttl <= 0 {
				t.Errorf("node %s: key %q left behind with PTTL %d", s.Addr, k, pttl)
			}
		}
		c.Close()
	}
}

func TestDemoInterruptedKillsItsNodes(t *testing.T) {
	requireRedis(t)
	// Slow sales keep the locked run going long after the interrupt.
	cmd := redlockCmd(t, nil, "demo", "--work", "300ms")
	pr, pw := io.Pipe()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started, scanned := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !signalled && strings.HasPrefix(sc.Text(), "without the lock:") {
				signalled = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the demo did not finish its unlocked run; stderr:\n%s", errb.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var sink bytes.Buffer
	r := wait(t, cmd, 30*time.Second, &sink, &errb)
	pw.Close()
	<-scanned
	if r.code != exitSignalBase+int(syscall.SIGINT) {
		t.Errorf("exit %d after SIGINT, want %d; stderr:\n%s", r.code, exitSignalBase+int(syscall.SIGINT), errb.String())
	}
	assertClosed(t, out.String())
}
