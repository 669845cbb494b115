package pooltest

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/quorumlock/quorumlock/pool"
)

func testCommander(t *testing.T, f Factory) {
	srv := server(t)
	p := open(t, f, srv.URL(), nil)
	c, ok := p.(pool.Commander)
	if !ok {
		t.Skipf("%T does not implement pool.Commander", p)
	}
	ctx := t.Context()
	run := func(cmd string, args ...any) any {
		t.Helper()
		v, err := c.Command(ctx, cmd, args...)
		if err != nil {
			t.Fatalf("%s %v: %v", cmd, args, err)
		}
		return v
	}

	if v, ok := text(run("PING")); !ok || v != "PONG" {
		t.Errorf("PING: %#v, want PONG", v)
	}
	info, ok := text(run("INFO", "server"))
	if !ok {
		t.Fatalf("INFO server: a %T, want a string", info)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	if fields["redis_version"] == "" || fields["tcp_port"] != "" && fields["tcp_port"] != strconv.Itoa(srv.Port) {
		t.Errorf("INFO server: redis_version %q, tcp_port %q (want the server's %d)", fields["redis_version"], fields["tcp_port"], srv.Port)
	}
	if arr, ok := run("CONFIG", "GET", "maxmemory-policy").([]any); !ok || len(arr) != 2 {
		t.Errorf("CONFIG GET maxmemory-policy: %#v, want a name and a value", arr)
	} else if k, _ := text(arr[0]); k != "maxmemory-policy" {
		t.Errorf("CONFIG GET maxmemory-policy: %#v", arr)
	}
	if arr, ok := run("TIME").([]any); !ok || len(arr) != 2 {
		t.Errorf("TIME: %#v, want seconds and microseconds", arr)
	}

	_, err := c.Command(ctx, "POOLTEST-NO-SUCH-COMMAND")
	if !isServerError(err) {
		t.Errorf("unknown command: %v (%T), want a *pool.ServerError", err, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Command(cancelled, "PING"); !isContextError(err) {
		t.Errorf("PING with a cancelled context: %v, want the context's error", err)
	}
}
