package pooltest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// testPipeliner checks pool.Pipeliner, when the adapter has it: replies in
// the order of the commands, nil for a nil reply; an error reply in the
// middle returned as a *pool.ServerError, with the connection still in step
// for the next call; a cancelled context; a deadline on a hung node.
func testPipeliner(t *testing.T, f Factory) {
	srv := server(t)
	p := open(t, f, srv.URL(), nil)
	pp, ok := p.(pool.Pipeliner)
	if !ok {
		t.Skipf("%T does not implement pool.Pipeliner", p)
	}
	ctx := t.Context()
	replies, err := pp.Pipeline(ctx, []pool.Cmd{
		{Name: "SET", Args: []any{"k", "v", "NX", "PX", 60000}},
		{Name: "SET", Args: []any{"k", "w", "NX", "PX", 60000}},
		{Name: "GET", Args: []any{"k"}},
		{Name: "PTTL", Args: []any{"missing"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := text(replies[0]); len(replies) != 4 || ok != "OK" || replies[1] != nil {
		t.Fatalf("replies %#v, want OK, nil, v, -2 in order", replies)
	}
	if v, _ := text(replies[2]); v != "v" || replies[3] != int64(-2) {
		t.Fatalf("replies %#v, want OK, nil, v, -2 in order", replies)
	}

	// Many times, so that a pool reusing one connection would read a
	// stale reply if the error left it out of step.
	for i := range 20 {
		_, err = pp.Pipeline(ctx, []pool.Cmd{
			{Name: "SET", Args: []any{"s", "not a number"}},
			{Name: "INCR", Args: []any{"s"}},
			{Name: "ECHO", Args: []any{"after"}},
		})
		if !isServerError(err) {
			t.Fatalf("a pipeline with a failing command: %v (%T), want a *pool.ServerError", err, err)
		}
		next, err := pp.Pipeline(ctx, []pool.Cmd{{Name: "ECHO", Args: []any{"next"}}})
		if v, _ := text(first(next)); err != nil || v != "next" {
			t.Fatalf("call %d after an error reply: %#v, %v; want its own reply", i, next, err)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := pp.Pipeline(cancelled, []pool.Cmd{{Name: "PING"}}); !isContextError(err) {
		t.Errorf("a pipeline with a cancelled context: %v, want the context's error", err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	err = within(t, "Pipeline with a deadline on a hung node", func() error {
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := pp.Pipeline(ctx, []pool.Cmd{{Name: "SET", Args: []any{"k", "v"}}, {Name: "PTTL", Args: []any{"k"}}})
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Pipeline: %v (%T), want an error matching context.DeadlineExceeded", err, err)
	}
}

func first(replies []any) any {
	if len(replies) == 0 {
		return nil
	}
	return replies[0]
}
