package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// The message of a failed round names the operation, the lock, the count of
// yes votes and the quorum, and what every node answered.
func TestQuorumErrorMessageListsNodes(t *testing.T) {
	c := newCluster(t, 3)
	lk := c.locker()
	c.nodes[0].Set(lockKey("orders:42"), "0123456789abcdef", time.Minute)
	c.nodes[1].Fail(errDown)
	c.nodes[2].Hang()
	_, err := within(t, "TryObtain", func() result {
		l, err := lk.TryObtain(t.Context(), "orders:42", time.Second)
		return result{l, err}
	}).unpack()
	if err == nil {
		t.Fatal("TryObtain succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		`redlock: obtain "orders:42"`,
		"0 of 3 yes, 2 needed",
		c.nodes[0].Addr() + ": held by 01234567",
		c.nodes[1].Addr() + ": error",
		"node down",
		c.nodes[2].Addr() + ": no answer yet",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	// The holder's token is shown only in part: enough to tell owners apart,
	// not enough to release their lock.
	if strings.Contains(msg, "0123456789abcdef") {
		t.Errorf("message shows the holder's whole token: %s", msg)
	}
}

func TestQuorumErrorUnwrap(t *testing.T) {
	wrongType := &pool.ServerError{Msg: "WRONGTYPE Operation against a key holding the wrong kind of value"}
	for _, tc := range []struct {
		name    string
		err     *redlock.QuorumError
		matches []error
	}{
		{"held", &redlock.QuorumError{Op: "obtain", Err: redlock.ErrHeld}, []error{redlock.ErrHeld}},
		{"no quorum", &redlock.QuorumError{Op: "obtain", Err: redlock.ErrNoQuorum, Votes: []redlock.NodeVote{
			{Addr: "a:1", Answered: true, Err: errDown},
		}}, []error{redlock.ErrNoQuorum}},
		{"wrong type", &redlock.QuorumError{Op: "obtain", Err: redlock.ErrNoQuorum, Votes: []redlock.NodeVote{
			{Addr: "a:1", Answered: true, Yes: true},
			{Addr: "b:1", Answered: true, Err: wrongType},
			{Addr: "c:1", Answered: true, Err: fmt.Errorf("wrapped: %w", wrongType)},
		}}, []error{redlock.ErrNoQuorum, redlock.ErrWrongType, pool.ErrWrongType}},
		{"expired", &redlock.QuorumError{Op: "obtain", Err: redlock.ErrExpired}, []error{redlock.ErrExpired}},
		{"not held", &redlock.QuorumError{Op: "extend", Err: redlock.ErrNotHeld}, []error{redlock.ErrNotHeld}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error = fmt.Errorf("context: %w", tc.err)
			for _, sentinel := range []error{redlock.ErrHeld, redlock.ErrNoQuorum, redlock.ErrExpired, redlock.ErrNotHeld, redlock.ErrWrongType, redlock.ErrClosed, redlock.ErrInvalid} {
				want := false
				for _, m := range tc.matches {
					want = want || m == sentinel
				}
				if got := errors.Is(err, sentinel); got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", sentinel, got, want)
				}
			}
			var qe *redlock.QuorumError
			if !errors.As(err, &qe) || qe != tc.err {
				t.Errorf("errors.As did not find the *QuorumError")
			}
			// Node errors are reported in the message, not matched: a node's
			// own context error must not make the round look cancelled.
			if errors.Is(err, errDown) || errors.Is(err, context.Canceled) {
				t.Errorf("a node's error is matched by the round's error")
			}
		})
	}
}

func TestSentinelsAreDistinct(t *testing.T) {
	sentinels := []error{redlock.ErrHeld, redlock.ErrNoQuorum, redlock.ErrExpired, redlock.ErrNotHeld, redlock.ErrWrongType, redlock.ErrClosed, redlock.ErrInvalid}
	for i, a := range sentinels {
		for j, b := range sentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v matches %v", a, b)
			}
		}
	}
	if redlock.ErrWrongType != pool.ErrWrongType {
		t.Errorf("redlock.ErrWrongType is not pool.ErrWrongType")
	}
	// A node's WRONGTYPE reply is matched by the pool's sentinel.
	if !errors.Is(&pool.ServerError{Msg: "WRONGTYPE lock key holds a value that is not a string"}, redlock.ErrWrongType) {
		t.Errorf("a WRONGTYPE ServerError does not match ErrWrongType")
	}
}

func TestNodeVoteString(t *testing.T) {
	for _, tc := range []struct {
		vote redlock.NodeVote
		want []string
		not  string
	}{
		{redlock.NodeVote{Addr: "a:1"}, []string{"a:1", "no answer"}, ""},
		{redlock.NodeVote{Addr: "a:1", Answered: true, Err: errDown, Latency: 1500 * time.Microsecond}, []string{"a:1", "error", "1.5ms", "node down"}, ""},
		{redlock.NodeVote{Addr: "a:1", Answered: true, Yes: true, Latency: 250 * time.Microsecond}, []string{"a:1", "yes", "250µs"}, ""},
		{redlock.NodeVote{Addr: "a:1", Answered: true, Holder: "01234567", HolderTTL: 1500 * time.Millisecond}, []string{"a:1", "held by 01234567", "1.5s"}, ""},
		{redlock.NodeVote{Addr: "a:1", Answered: true, Holder: "turn:01234567", HolderTTL: -3 * time.Millisecond}, []string{"a:1", "held by turn:01234567"}, " for "},
		{redlock.NodeVote{Addr: "a:1", Answered: true}, []string{"a:1", "no"}, ""},
	} {
		got := tc.vote.String()
		if tc.not != "" && strings.Contains(got, tc.not) {
			t.Errorf("%+v: String() = %q, has %q", tc.vote, got, tc.not)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v: String() = %q, lacks %q", tc.vote, got, w)
			}
		}
	}
}

// HolderTTL tells when a quorum of nodes will be free: the quorum-th smallest
// of 0 (yes votes) and the holders' remaining TTLs; errors, unanswered nodes
// and keys without expiry tell nothing.
func TestQuorumErrorHolderTTL(t *testing.T) {
	yes := redlock.NodeVote{Answered: true, Yes: true}
	held := func(d time.Duration) redlock.NodeVote {
		return redlock.NodeVote{Answered: true, Holder: "01234567", HolderTTL: d}
	}
	failed := redlock.NodeVote{Answered: true, Err: errDown}
	silent := redlock.NodeVote{}
	for _, tc := range []struct {
		name   string
		quorum int
		votes  []redlock.NodeVote
		want   time.Duration
		ok     bool
	}{
		{"one node", 1, []redlock.NodeVote{held(30 * time.Millisecond)}, 30 * time.Millisecond, true},
		{"quorum-th smallest", 3, []redlock.NodeVote{held(50 * time.Millisecond), held(10 * time.Millisecond), held(40 * time.Millisecond), held(20 * time.Millisecond), held(30 * time.Millisecond)}, 30 * time.Millisecond, true},
		{"yes votes are free now", 2, []redlock.NodeVote{yes, held(70 * time.Millisecond), held(40 * time.Millisecond)}, 40 * time.Millisecond, true},
		{"free on a quorum already", 2, []redlock.NodeVote{yes, yes, held(time.Second)}, 0, true},
		{"errors tell nothing", 2, []redlock.NodeVote{failed, held(time.Second), silent}, 0, false},
		{"no expiry tells nothing", 2, []redlock.NodeVote{held(-time.Millisecond), held(time.Second), failed}, 0, false},
		{"enough despite errors", 2, []redlock.NodeVote{failed, held(time.Second), held(2 * time.Second)}, 2 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qe := &redlock.QuorumError{Op: "obtain", Quorum: tc.quorum, Votes: tc.votes, Err: redlock.ErrHeld}
			got, ok := qe.HolderTTL()
			if got != tc.want || ok != tc.ok {
				t.Errorf("HolderTTL() = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// Errors about bad input all match ErrInvalid and say what was wrong.
func TestInvalidErrors(t *testing.T) {
	c := newCluster(t, 1)
	lk := c.locker()
	for what, err := range map[string]error{
		"empty name": func() error { _, err := lk.TryObtain(t.Context(), "", time.Second); return err }(),
		"ttl":        func() error { _, err := lk.TryObtain(t.Context(), "x", time.Millisecond); return err }(),
		"no nodes":   func() error { _, err := redlock.New(nil); return err }(),
	} {
		if !errors.Is(err, redlock.ErrInvalid) {
			t.Errorf("%s: %v does not match ErrInvalid", what, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "redlock: ") {
			t.Errorf("%s: message %q does not say where it comes from", what, err)
		}
	}
}
