package pool_test

import (
	"context"
	"errors"
	"testing"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
)

func pipeline(t *testing.T, p *pool.Redigo, cmds ...pool.Cmd) ([]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	return p.Pipeline(ctx, cmds)
}

func TestRedigoPipeline(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL(), pool.WithMaxIdle(1))
	var _ pool.Pipeliner = p
	replies, err := pipeline(t, p,
		pool.Cmd{Name: "SET", Args: []any{"k", "v", "NX", "PX", 60000}},
		pool.Cmd{Name: "SET", Args: []any{"k", "w", "NX", "PX", 60000}},
		pool.Cmd{Name: "GET", Args: []any{"k"}},
		pool.Cmd{Name: "PTTL", Args: []any{"missing"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(replies) != 4 || replies[0] != "OK" || replies[1] != nil || string(replies[2].([]byte)) != "v" || replies[3] != int64(-2) {
		t.Fatalf("replies %#v, want OK, nil, v, -2 in order", replies)
	}
	if n := commandCalls(t, srv, "set"); n != 2 {
		t.Errorf("SET ran %d times, want 2", n)
	}
}

// An error reply in the middle of a pipeline is returned once the replies
// after it are read: the connection goes back to the pool in step, and the
// next call on it reads its own replies.
func TestRedigoPipelineErrorReply(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := dial(t, srv.URL(), pool.WithMaxIdle(1))
	_, err := pipeline(t, p,
		pool.Cmd{Name: "SET", Args: []any{"s", "not a number"}},
		pool.Cmd{Name: "INCR", Args: []any{"s"}},
		pool.Cmd{Name: "ECHO", Args: []any{"after"}},
	)
	var se *pool.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("pipeline with a failing command = %v (%T), want a *ServerError", err, err)
	}
	replies, err := pipeline(t, p, pool.Cmd{Name: "ECHO", Args: []any{"next"}})
	if err != nil || len(replies) != 1 || string(replies[0].([]byte)) != "next" {
		t.Fatalf("the next pipeline on the connection = %#v, %v; want its own reply", replies, err)
	}
	if n := commandCalls(t, srv, "echo"); n != 2 {
		t.Errorf("ECHO ran %d times, want 2", n)
	}
}
