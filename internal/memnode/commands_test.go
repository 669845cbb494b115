package memnode_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// The plain commands behave as Redis's do, and run together.
func TestCommands(t *testing.T) {
	n, c := newNode()
	n.SetNonString("list")
	n.Set("forever", "v", 0)
	ctx := context.Background()
	run := func(cmds ...pool.Cmd) []any {
		t.Helper()
		out, err := n.Commands(ctx, cmds)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cmd := func(name string, args ...any) pool.Cmd { return pool.Cmd{Name: name, Args: args} }
	got := run(
		cmd("SET", "k", "a", "NX", "PX", 1500),
		cmd("SET", "k", "b", "NX", "PX", 1500),
		cmd("GET", "k"),
		cmd("PTTL", "k"),
		cmd("PTTL", "forever"),
		cmd("PTTL", "missing"),
		cmd("GET", "missing"),
	)
	want := []any{"OK", nil, "a", int64(1500), int64(-1), int64(-2), nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replies %#v, want %#v", got, want)
	}
	c.Advance(1500 * time.Millisecond)
	if got := run(cmd("SET", "k", "b", "NX", "PX", 100), cmd("GET", "k")); !reflect.DeepEqual(got, []any{"OK", "b"}) {
		t.Errorf("after the key expired: %#v, want OK and the new value", got)
	}
	for _, bad := range []pool.Cmd{cmd("GET", "list"), cmd("SET", "k", "v", "PX", 0), cmd("SET", "k"), cmd("DEL", "k")} {
		var se *pool.ServerError
		if _, err := n.Commands(ctx, []pool.Cmd{bad}); !errors.As(err, &se) {
			t.Errorf("%v: %v, want an error reply", bad, err)
		}
	}
	n.Fail(errDown)
	if _, err := n.Commands(ctx, []pool.Cmd{cmd("PTTL", "k")}); !errors.Is(err, errDown) {
		t.Errorf("a failing node: %v, want its error", err)
	}
}
