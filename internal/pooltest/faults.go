package pooltest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

func testContextEndedBeforeCall(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	for _, ended := range []struct {
		name string
		ctx  func() context.Context
		want error
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"past its deadline", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	} {
		t.Run(ended.name, func(t *testing.T) {
			err := within(t, "Eval", func() error { return evalEcho(ended.ctx(), p, "x") })
			if !errors.Is(err, ended.want) {
				t.Errorf("Eval: %v, want %v", err, ended.want)
			}
		})
	}
}

// testCancelMidCommand pauses the node while a command waits for its reply
// and cancels the command's context: Eval must return the context's error
// without waiting for the node. Once the node resumes, its late reply must
// not be taken for the answer to a later command.
func testCancelMidCommand(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	// Connect and load the script first, so that the call cancelled below
	// is an EVALSHA already written to the node.
	if err := evalEcho(t.Context(), p, "warm"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Resume() })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- evalEcho(ctx, p, "stale") }()
	// The call is under way (or about to be); either way its context ends
	// before the node can answer.
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Eval cancelled on a paused node: %v, want context.Canceled", err)
		}
	case <-time.After(hangBound):
		t.Fatalf("Eval still running %v after its context was cancelled on a paused node", hangBound)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	// Every later call gets its own answer. A connection still owing the
	// cancelled call's reply must have been discarded (or drained).
	var failures []error
	for i := range 20 {
		v := "fresh-" + strconv.Itoa(i)
		err := within(t, "Eval after resume", func() error {
			ctx, cancel := context.WithTimeout(t.Context(), hangBound)
			defer cancel()
			return evalEcho(ctx, p, v)
		})
		if err != nil && strings.Contains(err.Error(), "stale") {
			t.Fatalf("call %d got the cancelled call's reply: %v", i, err)
		}
		if err != nil {
			failures = append(failures, err)
		}
	}
	if len(failures) > 1 {
		t.Errorf("%d of 20 calls failed after the node resumed (at most one may hit the cancelled connection): %v", len(failures), failures)
	}
}

// testDeadlineOnHungNode uses a node that accepts connections (the kernel
// completes the handshake) but never answers: a call with a deadline on a new
// pool must end with the deadline, wherever it hangs (logging in, loading the
// script, running it).
func testDeadlineOnHungNode(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Resume() })
	checkDeadline(t, p)
}

// testDeadlineOnHungConnection: as testDeadlineOnHungNode, on a connection
// that worked before the node hung, with the script loaded.
func testDeadlineOnHungConnection(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	if err := evalEcho(t.Context(), p, "warm"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Resume() })
	checkDeadline(t, p)
}

func checkDeadline(t *testing.T, p pool.Pool) {
	t.Helper()
	err := within(t, "Eval with a deadline on a hung node", func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		return evalEcho(ctx, p, "x")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Eval: %v (%T), want an error matching context.DeadlineExceeded", err, err)
	}
}

// testConnectionRefused kills the node: calls fail at once with an error that
// names the node, not with the caller's deadline and not as an error reply.
func testConnectionRefused(t *testing.T, f Factory) {
	s := server(t)
	used := open(t, f, s.URL(), nil)
	if err := evalEcho(t.Context(), used, "warm"); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	fresh := open(t, f, s.URL(), nil)
	port := strconv.Itoa(s.Port)
	for _, tc := range []struct {
		name string
		p    pool.Pool
	}{{"new pool", fresh}, {"pool used before", used}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.p.Addr() != s.Addr {
				t.Errorf("Addr() = %q, want %q", tc.p.Addr(), s.Addr)
			}
			// A pooled connection may first fail by noticing the close;
			// from then on the dial is refused.
			for i := range 3 {
				ctx, cancel := context.WithTimeout(t.Context(), hangBound)
				err := within(t, "Eval on a killed node", func() error { return evalEcho(ctx, tc.p, "x") })
				ended := ctx.Err()
				cancel()
				switch {
				case err == nil:
					t.Fatalf("attempt %d: Eval on a killed node succeeded", i+1)
				case ended != nil || isContextError(err):
					t.Fatalf("attempt %d: Eval on a killed node ran into its deadline: %v", i+1, err)
				case isServerError(err):
					t.Fatalf("attempt %d: a refused connection reported as an error reply: %v", i+1, err)
				}
				if i == 2 && !strings.Contains(err.Error(), port) {
					t.Errorf("error %q does not name the node's port %s", err, port)
				}
			}
		})
	}
}
