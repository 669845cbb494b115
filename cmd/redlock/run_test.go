package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

// cliBound bounds every redlock process a test runs: a guard against a
// hang, not a speed requirement.
const cliBound = 60 * time.Second

// holdLock obtains name on servers from the test process, as another
// owner would, and releases it when t ends.
func holdLock(t *testing.T, servers []*redistest.Server, name string, ttl time.Duration) *redlock.Lock {
	t.Helper()
	lk, err := redlock.New(redistest.Pools(t, servers))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Close() })
	ctx := ctxFor(t, cliBound)
	l, err := lk.Obtain(ctx, name, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Release(ctx) })
	// Obtain returns once a quorum said yes: wait for every copy, so that
	// what the tests expect of status is settled.
	for {
		in, err := lk.Inspect(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, n := in.Holder(); n == len(servers) {
			return l
		}
	}
}

// running reports whether process pid exists and is not a zombie (this
// test's orphans are reaped by init, which some containers do late).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat("/proc/self/stat"); err == nil {
			return false
		}
		return syscall.Kill(pid, 0) == nil // no /proc
	}
	if err != nil {
		return false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// waitForFile waits until path exists and holds want, or the bound passes.
func waitForFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(cliBound)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return string(b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never held %q", path, want)
	return ""
}

func TestRunNeverInterleavesTwoCommands(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	file := filepath.Join(t.TempDir(), "log")
	// Each command appends a block of lines, pausing between them: two
	// commands running at once would interleave their lines.
	const runs, lines = 4, 5
	script := fmt.Sprintf(`for i in $(seq %d); do echo "$1 $i" >> %q; sleep 0.02; done`, lines, file)
	var wg sync.WaitGroup
	results := make([]result, runs)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runCLI(t, cliBound, env, "run", "--name", "appender", "--wait", "50s", "--", "sh", "-c", script, "sh", "run"+strconv.Itoa(i))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("run %d: exit %d; stderr:\n%s", i, r.code, r.stderr)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(got) != runs*lines {
		t.Fatalf("%d lines, want %d:\n%s", len(got), runs*lines, b)
	}
	seen := map[string]bool{}
	for block := 0; block < runs; block++ {
		id := strings.Fields(got[block*lines])[0]
		if seen[id] {
			t.Fatalf("%s ran twice or was interleaved:\n%s", id, b)
		}
		seen[id] = true
		for i := 0; i < lines; i++ {
			if want := fmt.Sprintf("%s %d", id, i+1); got[block*lines+i] != want {
				t.Fatalf("line %d is %q, want %q: commands interleaved:\n%s", block*lines+i+1, got[block*lines+i], want, b)
			}
		}
	}
}

func TestRunGivesUpWhileAnotherHoldsTheLock(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	l := holdLock(t, servers, "busy", time.Minute)
	marker := filepath.Join(t.TempDir(), "ran")
	tests := []struct {
		name  string
		flags []string
		how   string
	}{
		{"no wait", []string{"--no-wait"}, "with --no-wait"},
		{"wait runs out", []string{"--wait", "300ms"}, "within --wait 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--name", "busy"}, tt.flags...)
			args = append(args, "--", "touch", marker)
			r := runCLI(t, cliBound, env, args...)
			if r.code != exitNotObtained {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitNotObtained, r.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran although the lock was held")
			}
			want := fmt.Sprintf("lock %q not obtained %s: held by another owner (token %s on 3 of 3 nodes), expires in ", "busy", tt.how, l.Token()[:shortToken])
			if !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one line containing %q", r.stderr, want)
			}
		})
	}
}

func TestRunStopsTheCommandWhenTheLockIsLost(t *testing.T) {
	tests := []struct {
		name    string
		script  string // writes "started <pid>" to $1, and "term" when it gets SIGTERM
		grace   string
		killed  bool // the command ignores SIGTERM and needs SIGKILL
		wantMsg string
	}{
		{"command obeys SIGTERM", `echo "started $$" > "$1"; trap 'echo term >> "$1"; exit 9' TERM; while :; do sleep 0.05; done`,
			"30s", false, "sending SIGTERM to the command"},
		{"command ignores SIGTERM", `echo "started $$" > "$1"; trap '' TERM; while :; do sleep 0.05; done`,
			"300ms", true, "sent SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := redistest.Start(t, 3)
			marker := filepath.Join(t.TempDir(), "marker")
			cmd := redlockCmd(t, []string{nodesEnvOf(servers)}, "run", "--name", "job", "--ttl", "1s", "--grace", tt.grace, "--", "sh", "-c", tt.script, "sh", marker)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			started := waitForFile(t, marker, "started")
			pid, err := strconv.Atoi(strings.Fields(started)[1])
			if err != nil {
				t.Fatal(err)
			}
			// A majority of the nodes dies: the next renewal fails.
			for _, s := range servers[1:] {
				if err := s.Kill(); err != nil {
					t.Fatal(err)
				}
			}
			r := wait(t, cmd, cliBound, &out, &errb)
			if r.code != exitLost {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitLost, r.stderr)
			}
			for _, want := range []string{`lock "job" lost while the command ran`, tt.wantMsg, "stopped because the lock was lost"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if b, _ := os.ReadFile(marker); strings.Contains(string(b), "term") == tt.killed {
				t.Errorf("marker %q: the command's SIGTERM trap ran = %v, want %v", b, tt.killed, !tt.killed)
			}
			if running(pid) {
				t.Errorf("the command (pid %d) still runs after redlock exited", pid)
			}
		})
	}
}

func TestRunPassesStatusAndSignalsThrough(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	tests := []struct {
		name   string
		argv   []string
		status int
	}{
		{"success", []string{"true"}, 0},
		{"exit status", []string{"sh", "-c", "exit 7"}, 7},
		{"killed by a signal", []string{"sh", "-c", "kill -USR1 $$"}, exitSignalBase + int(syscall.SIGUSR1)},
		{"not found", []string{"no-such-command-for-redlock"}, exitNotFound},
		{"not found by path", []string{"./no/such/file"}, exitNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, cliBound, env, append([]string{"run", "--name", "st", "--"}, tt.argv...)...)
			if r.code != tt.status {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.status, r.stderr)
			}
		})
	}
	t.Run("not executable", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := runCLI(t, cliBound, env, "run", "--name", "st", "--", f); r.code != exitCannotExec {
			t.Errorf("exit %d, want %d; stderr:\n%s", r.code, exitCannotExec, r.stderr)
		}
	})
	t.Run("SIGTERM is forwarded and the lock released", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "marker")
		script := `echo started > "$1"; trap 'echo term >> "$1"; exit 0' TERM; while :; do sleep 0.05; done`
		cmd := redlockCmd(t, env, "run", "--name", "fwd", "--", "sh", "-c", script, "sh", marker)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitForFile(t, marker, "started")
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, cmd, cliBound, &out, &errb); r.code != 0 {
			t.Errorf("exit %d, want the command's 0; stderr:\n%s", r.code, r.stderr)
		}
		waitForFile(t, marker, "term")
		if r := runCLI(t, cliBound, env, "status", "fwd"); r.code != exitFree {
			t.Errorf("status after exit: %d, want %d (released):\n%s", r.code, exitFree, r.stdout)
		}
	})
}

func TestRunOutlivesNeitherItsCommandNorCtrlZ(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	start := func(t *testing.T, name, script string) (*exec.Cmd, *lockedBuffer, *lockedBuffer, string) {
		marker := filepath.Join(t.TempDir(), "marker")
		cmd := redlockCmd(t, env, "run", "--name", name, "--", "sh", "-c", script, "sh", marker)
		var out, errb lockedBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out, &errb, marker
	}
	t.Run("the command dies with redlock", func(t *testing.T) {
		cmd, out, errb, marker := start(t, "orphan", `echo "started $$" > "$1"; while :; do sleep 0.05; done`)
		pid, err := strconv.Atoi(strings.Fields(waitForFile(t, marker, "started"))[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		wait(t, cmd, cliBound, out, errb)
		deadline := time.Now().Add(cliBound)
		for running(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("the command (pid %d) outlived the killed redlock, and so its lock", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("Ctrl-Z is refused", func(t *testing.T) {
		cmd, out, errb, marker := start(t, "tstp", `echo started > "$1"; while [ ! -e "$1.done" ]; do sleep 0.02; done`)
		waitForFile(t, marker, "started")
		if err := cmd.Process.Signal(syscall.SIGTSTP); err != nil {
			t.Fatal(err)
		}
		// A stopped redlock would never print this.
		deadline := time.Now().Add(cliBound)
		for !strings.Contains(errb.String(), "not stopping (Ctrl-Z)") {
			if time.Now().After(deadline) {
				t.Fatal("redlock did not refuse SIGTSTP")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := os.WriteFile(marker+".done", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := wait(t, cmd, cliBound, out, errb); r.code != 0 {
			t.Errorf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
	})
}

func TestRunPassesTheFencingToken(t *testing.T) {
	servers := redistest.Start(t, 3)
	env := []string{nodesEnvOf(servers)}
	file := filepath.Join(t.TempDir(), "fences")
	// Different names share the prefix's counter: tokens grow across them.
	for _, name := range []string{"f1", "f2", "f1"} {
		r := runCLI(t, cliBound, env, "run", "--name", name, "--fence-env", "MY_FENCE", "--", "sh", "-c", `echo "$MY_FENCE" >> "$1"`, "sh", file)
		if r.code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	prev := int64(0)
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= prev {
			t.Fatalf("fencing tokens %q: want positive and increasing", strings.Fields(string(b)))
		}
		prev = n
	}
	if len(strings.Fields(string(b))) != 3 {
		t.Fatalf("fencing tokens %q: want 3", b)
	}
}

func TestWaitLine(t *testing.T) {
	held := func(tok string, ttl time.Duration) redlock.NodeState {
		return redlock.NodeState{Addr: "n", Held: true, Token: tok, TTL: ttl}
	}
	tok := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name  string
		nodes []redlock.NodeState
		want  string
	}{
		{"held", []redlock.NodeState{held(tok, 12300*time.Millisecond), held(tok, 12*time.Second), {}},
			`redlock: waiting for lock "job": held by 01234567 on 2 of 3 nodes, expires in 12s unless renewed (waited 4s)`},
		{"free", []redlock.NodeState{{}, {}, held(tok, time.Second)},
			`redlock: waiting for lock "job": not held on a quorum, retrying (waited 4s)`},
		{"unknown", []redlock.NodeState{{Err: os.ErrDeadlineExceeded}, {Err: os.ErrDeadlineExceeded}, {}},
			`redlock: waiting for lock "job": 1 of 3 nodes answer (waited 4s)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := redlock.Inspection{Name: "job", Quorum: 2, Nodes: tt.nodes}
			if got := waitLine("job", in, 4200*time.Millisecond); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
