package pooltest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// canonical turns a reply into the one shape tests compare: bulk and status
// strings as string; int64, nil and []any kept. Any other type is returned
// as is, so that it fails the comparison.
func canonical(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = canonical(e)
		}
		return out
	}
	return v
}

func testReplies(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	tests := []struct {
		name string
		src  string
		keys []string
		args []any
		want any
	}{
		{"integer", `return 42`, nil, nil, int64(42)},
		{"negative integer", `return -7`, nil, nil, int64(-7)},
		{"bulk string", `return ARGV[1]`, nil, []any{"héllo"}, "héllo"},
		{"empty string", `return ''`, nil, nil, ""},
		{"status", `return redis.status_reply('OK')`, nil, nil, "OK"},
		{"nil from false", `return false`, nil, nil, nil},
		{"nil from a missing key", `return redis.call('GET', KEYS[1])`, []string{"pooltest:absent"}, nil, nil},
		{"integer argument as string", `return ARGV[1]`, nil, []any{int64(1500)}, "1500"},
		{"true is 1", `return true`, nil, nil, int64(1)},
		{"empty array", `return {}`, nil, nil, []any{}},
		{"nested array", `return {1, 'a', {2, 'b'}, false}`, nil, nil, []any{int64(1), "a", []any{int64(2), "b"}, nil}},
		{"keys and arguments in order", `return {KEYS[1], KEYS[2], ARGV[1], ARGV[2]}`,
			[]string{"pooltest:k1", "pooltest:k2"}, []any{"a1", "a2"}, []any{"pooltest:k1", "pooltest:k2", "a1", "a2"}},
		{"set then get", `redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000); return redis.call('GET', KEYS[1])`,
			[]string{"pooltest:set"}, []any{"v"}, "v"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := &pool.Script{Name: "pooltest-" + tc.name, Src: tc.src}
			got, err := p.Eval(t.Context(), sc, tc.keys, tc.args...)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if c := canonical(got); !reflect.DeepEqual(c, tc.want) {
				t.Errorf("reply %#v (%T), want %#v", got, got, tc.want)
			}
		})
	}

	// The coordinator's own decoders accept what the adapter returns.
	ctx := t.Context()
	reply, err := p.Eval(ctx, scripts.Acquire, []string{"pooltest:lock", "pooltest:boot"}, "token-of-holder", "60000")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := scripts.DecodeAcquire(reply); err != nil || !r.Granted {
		t.Fatalf("acquire: %+v, %v; want granted", r, err)
	}
	reply, err = p.Eval(ctx, scripts.Acquire, []string{"pooltest:lock", "pooltest:boot"}, "another-token", "60000")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := scripts.DecodeAcquire(reply); err != nil || r.Granted || r.Holder != "token-of" || r.HolderTTLms <= 0 {
		t.Fatalf("second acquire: %+v, %v; want refused, held by \"token-of\"", r, err)
	}
	reply, err = p.Eval(ctx, scripts.Release, []string{"pooltest:lock"}, "token-of-holder")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := scripts.DecodeFlag(reply); err != nil || !ok {
		t.Fatalf("release: %v, %v; want released", ok, err)
	}
}

func testErrorReplies(t *testing.T, f Factory) {
	s := server(t)
	p := open(t, f, s.URL(), nil)
	ctx := t.Context()
	push := &pool.Script{Name: "pooltest-push", Src: `return redis.call('RPUSH', KEYS[1], 'x')`}
	if _, err := p.Eval(ctx, push, []string{"pooltest:list"}); err != nil {
		t.Fatal(err)
	}
	get := &pool.Script{Name: "pooltest-get", Src: `return redis.call('GET', KEYS[1])`}
	custom := &pool.Script{Name: "pooltest-custom", Src: `return redis.error_reply('ERR pooltest boom')`}
	tests := []struct {
		name      string
		s         *pool.Script
		keys      []string
		args      []any
		wrongType bool
	}{
		{"WRONGTYPE raised by redis.call", get, []string{"pooltest:list"}, nil, true},
		{"WRONGTYPE from the acquire script", scripts.Acquire, []string{"pooltest:list", "pooltest:boot"}, []any{"t", "1000"}, true},
		{"other error reply", custom, nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Eval(ctx, tc.s, tc.keys, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if !isServerError(err) {
				t.Errorf("error %v (%T) is not a *pool.ServerError", err, err)
			}
			if got := errors.Is(err, pool.ErrWrongType); got != tc.wrongType {
				t.Errorf("errors.Is(%v, ErrWrongType) = %v, want %v", err, got, tc.wrongType)
			}
			if errors.Is(err, pool.ErrNoScript) {
				t.Errorf("errors.Is(%v, ErrNoScript) is true", err)
			}
		})
	}
	// A script that does not compile is an error reply, not a hang or a
	// panic.
	bad := &pool.Script{Name: "pooltest-bad", Src: `return (`}
	if _, err := p.Eval(ctx, bad, nil); err == nil || !isServerError(err) {
		t.Errorf("script with a syntax error: %v, want a *pool.ServerError", err)
	}
	// The pool still works after error replies.
	if err := evalEcho(ctx, p, "after errors"); err != nil {
		t.Error(err)
	}
}
