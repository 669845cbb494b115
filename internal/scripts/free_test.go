package scripts_test

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

func TestDecodeFreeAcquire(t *testing.T) {
	life := int64(scripts.MarkerLifeMs)
	for _, tc := range []struct {
		name    string
		replies []any
		settled bool
		age     int64
	}{
		{"granted", []any{"OK", life - 1500}, true, 1500},
		{"granted, bulk OK", []any{[]byte("OK"), life}, true, 0},
		{"refused", []any{nil, life - 1500}, false, 0},
		{"marker missing", []any{"OK", int64(-2)}, false, 0},
		{"marker without expiry", []any{"OK", int64(-1)}, false, 0},
		{"marker expiry beyond its life", []any{"OK", life + 1}, false, 0},
		{"not OK", []any{"QUEUED", life}, false, 0},
		{"age not an integer", []any{"OK", "12"}, false, 0},
		{"one reply", []any{"OK"}, false, 0},
	} {
		ar, ok := scripts.DecodeFreeAcquire(tc.replies)
		if ok != tc.settled {
			t.Errorf("%s: settled = %v, want %v", tc.name, ok, tc.settled)
			continue
		}
		if ok && (!ar.Granted || ar.MarkerAgeMs != tc.age || ar.Holder != "" || ar.Fence != 0) {
			t.Errorf("%s: %+v, want granted with marker age %d", tc.name, ar, tc.age)
		}
	}
}

// On a real server: the pipeline grants a free lock with SET and PTTL alone
// once the marker exists, reads the same marker age as the script, and
// leaves every other case to the script, which settles it.
func TestFreeAcquireOnRedis(t *testing.T) {
	_, p, ctx, conn := onRedis(t)
	pp := p.(pool.Pipeliner)
	free := func(key, token string) (scripts.AcquireReply, bool) {
		t.Helper()
		replies, err := pp.Pipeline(ctx, scripts.FreeAcquire(key, bootMarker, token, "60000"))
		if err != nil {
			t.Fatal(err)
		}
		return scripts.DecodeFreeAcquire(replies)
	}
	script := func(key, token string) scripts.AcquireReply {
		t.Helper()
		reply, err := p.Eval(ctx, scripts.Acquire, []string{key, bootMarker}, token, "60000")
		if err != nil {
			t.Fatal(err)
		}
		ar, err := scripts.DecodeAcquire(reply)
		if err != nil {
			t.Fatal(err)
		}
		return ar
	}
	// A node without a marker: the key is set, but the call is the
	// script's, which grants it again (the caller's own token) and writes
	// the marker.
	if _, ok := free("a", "tok-a"); ok {
		t.Fatal("settled without a boot marker")
	}
	if ar := script("a", "tok-a"); !ar.Granted || ar.MarkerAgeMs != 0 {
		t.Fatalf("the script after it: %+v, want granted with a new marker", ar)
	}
	calls := commandCounter(t, conn)
	ar, ok := free("b", "tok-b")
	if !ok || !ar.Granted {
		t.Fatalf("free lock: %+v, %v; want settled and granted", ar, ok)
	}
	if got, want := calls(), map[string]int64{"set": 1, "pttl": 1}; !maps.Equal(got, want) {
		t.Errorf("free lock ran %v, want %v", got, want)
	}
	if sa := script("c", "tok-c"); sa.MarkerAgeMs < ar.MarkerAgeMs || sa.MarkerAgeMs-ar.MarkerAgeMs > 5000 {
		t.Errorf("marker age %d ms by the pipeline, then %d by the script", ar.MarkerAgeMs, sa.MarkerAgeMs)
	}
	// Held by another: not settled; the key is untouched.
	if _, ok := free("b", "tok-x"); ok {
		t.Error("a held lock settled")
	}
	if v, _ := redis.String(conn.Do("GET", "b")); v != "tok-b" {
		t.Errorf("held lock now %q", v)
	}
	// A marker an older client wrote without expiry.
	if _, err := conn.Do("SET", bootMarker, "1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := free("d", "tok-d"); ok {
		t.Error("settled with a marker without expiry")
	}
}

// commandCounter resets the server's command statistics and returns a
// function reporting the commands run since (EVALSHA and the commands its
// script ran), leaving out the test's own and the pool loading a script.
func commandCounter(t *testing.T, conn redis.Conn) func() map[string]int64 {
	t.Helper()
	if _, err := conn.Do("CONFIG", "RESETSTAT"); err != nil {
		t.Fatal(err)
	}
	return func() map[string]int64 {
		text, err := redis.String(conn.Do("INFO", "commandstats"))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, line := range strings.Split(text, "\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
			if !ok || strings.HasPrefix(name, "config") || strings.HasPrefix(name, "script") || name == "info" {
				continue
			}
			calls, _, _ := strings.Cut(rest, ",")
			got[name], _ = strconv.ParseInt(calls, 10, 64)
		}
		return got
	}
}
