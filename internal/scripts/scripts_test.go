package scripts_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// bootMarker is the boot-marker key these tests pass to Acquire.
const bootMarker = "\x00boot:test:"

// acquireReply builds a reply of Acquire: {granted, holder PTTL, holder,
// fence, marker age ms}.
func acquireReply(granted, pttl int64, holder any, fence, age int64) []any {
	return []any{granted, pttl, holder, fence, age}
}

func TestDecodeAcquire(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply any
		want  scripts.AcquireReply
		err   bool
	}{
		{"granted", acquireReply(1, 0, []byte(""), 0, 5),
			scripts.AcquireReply{Granted: true, MarkerAgeMs: 5}, false},
		{"granted with fence", acquireReply(1, 0, "", 7, 0),
			scripts.AcquireReply{Granted: true, Fence: 7}, false},
		{"refused", acquireReply(0, 1500, []byte("0123abcd"), 0, 3),
			scripts.AcquireReply{HolderTTLms: 1500, Holder: "0123abcd", MarkerAgeMs: 3}, false},
		{"refused, holder as string", acquireReply(0, 1500, "0123abcd", 0, 3),
			scripts.AcquireReply{HolderTTLms: 1500, Holder: "0123abcd", MarkerAgeMs: 3}, false},
		{"refused, no expiry", acquireReply(0, -1, []byte("0123abcd"), 0, 3),
			scripts.AcquireReply{HolderTTLms: -1, Holder: "0123abcd", MarkerAgeMs: 3}, false},
		{"int elements", []any{1, 0, "", 0, 3},
			scripts.AcquireReply{Granted: true, MarkerAgeMs: 3}, false},
		{"nil", nil, scripts.AcquireReply{}, true},
		{"not an array", int64(1), scripts.AcquireReply{}, true},
		{"empty array", []any{}, scripts.AcquireReply{}, true},
		{"too short", []any{int64(1)}, scripts.AcquireReply{}, true},
		{"too long", append(acquireReply(1, 0, "", 0, 3), int64(0)), scripts.AcquireReply{}, true},
		{"flag not an integer", []any{[]byte("1"), int64(0), "", int64(0), int64(3)}, scripts.AcquireReply{}, true},
		{"unknown flag", acquireReply(2, 0, "", 0, 3), scripts.AcquireReply{}, true},
		{"TTL not an integer", []any{int64(0), []byte("10"), "h", int64(0), int64(3)}, scripts.AcquireReply{}, true},
		{"holder not a string", acquireReply(0, 10, int64(5), 0, 3), scripts.AcquireReply{}, true},
		{"fence not an integer", []any{int64(1), int64(0), "", "7", int64(3)}, scripts.AcquireReply{}, true},
		{"age not an integer", []any{int64(1), int64(0), "", int64(0), nil}, scripts.AcquireReply{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scripts.DecodeAcquire(tc.reply)
			if (err != nil) != tc.err {
				t.Fatalf("DecodeAcquire(%#v) error = %v, want error %v", tc.reply, err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Errorf("DecodeAcquire(%#v) = %+v, want %+v", tc.reply, got, tc.want)
			}
		})
	}
}

func TestDecodeFlag(t *testing.T) {
	for _, tc := range []struct {
		reply any
		want  bool
		err   bool
	}{
		{int64(1), true, false},
		{int64(0), false, false},
		{1, true, false},
		{int64(2), false, true},
		{int64(-1), false, true},
		{nil, false, true},
		{[]byte("1"), false, true},
		{[]any{int64(1)}, false, true},
	} {
		got, err := scripts.DecodeFlag(tc.reply)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("DecodeFlag(%#v) = %v, %v; want %v, error %v", tc.reply, got, err, tc.want, tc.err)
		}
	}
}

func TestDecodeFlags(t *testing.T) {
	got, err := scripts.DecodeFlags([]any{int64(1), int64(0), int64(1)}, 3)
	if err != nil || !reflect.DeepEqual(got, []bool{true, false, true}) {
		t.Errorf("DecodeFlags = %v, %v", got, err)
	}
	for _, bad := range []struct {
		reply any
		n     int
	}{
		{[]any{int64(1)}, 2},
		{[]any{int64(1), int64(5)}, 2},
		{int64(1), 1},
		{nil, 0},
	} {
		if _, err := scripts.DecodeFlags(bad.reply, bad.n); err == nil {
			t.Errorf("DecodeFlags(%#v, %d) succeeded", bad.reply, bad.n)
		}
	}
}

func TestInt(t *testing.T) {
	for _, v := range []any{int64(-3), -3} {
		if n, err := scripts.Int(v); err != nil || n != -3 {
			t.Errorf("Int(%#v) = %d, %v", v, n, err)
		}
	}
	for _, v := range []any{nil, "3", []byte("3"), 3.0, []any{int64(3)}} {
		if _, err := scripts.Int(v); err == nil {
			t.Errorf("Int(%#v) succeeded", v)
		}
	}
}

// Rules every script follows (DESIGN.md): expiry is relative (PX, PEXPIRE),
// never an absolute instant, and every key comes from KEYS.
func TestScriptRules(t *testing.T) {
	absolute := regexp.MustCompile(`(?i)'(PXAT|EXAT|PEXPIREAT|EXPIREAT)'`)
	keyFromArgs := regexp.MustCompile(`redis\.p?call\(\s*'[A-Za-z]+'\s*,\s*ARGV`)
	for _, s := range []*pool.Script{scripts.Acquire, scripts.Release, scripts.ReleaseTurn, scripts.Leave, scripts.Extend, scripts.ExtendMany} {
		if s.Name == "" || strings.TrimSpace(s.Src) == "" {
			t.Errorf("script %q has no name or source", s.Name)
		}
		if m := absolute.FindString(s.Src); m != "" {
			t.Errorf("script %s uses %s: expiry must be relative on the server", s.Name, m)
		}
		if keyFromArgs.MatchString(s.Src) {
			t.Errorf("script %s passes an argument as a key", s.Name)
		}
	}
}

// The scripts' semantics on a real Redis.
func TestScriptsOnRedis(t *testing.T) {
	_, p, ctx, conn := onRedis(t)
	run := func(s *pool.Script, key string, args ...any) (any, error) {
		t.Helper()
		return p.Eval(ctx, s, []string{key}, args...)
	}
	flag := func(s *pool.Script, key string, args ...any) bool {
		t.Helper()
		reply, err := run(s, key, args...)
		if err != nil {
			t.Fatalf("%s(%s): %v", s.Name, key, err)
		}
		ok, err := scripts.DecodeFlag(reply)
		if err != nil {
			t.Fatalf("%s(%s): %v", s.Name, key, err)
		}
		return ok
	}
	acquire := func(key, token string, ttlms int) scripts.AcquireReply {
		t.Helper()
		reply, err := p.Eval(ctx, scripts.Acquire, []string{key, bootMarker}, token, ttlms)
		if err != nil {
			t.Fatalf("acquire(%s): %v", key, err)
		}
		ar, err := scripts.DecodeAcquire(reply)
		if err != nil {
			t.Fatalf("acquire(%s): %v", key, err)
		}
		return ar
	}
	get := func(key string) (string, int64) {
		t.Helper()
		v, err := redis.String(conn.Do("GET", key))
		if errors.Is(err, redis.ErrNil) {
			return "", -2
		}
		if err != nil {
			t.Fatal(err)
		}
		pttl, err := redis.Int64(conn.Do("PTTL", key))
		if err != nil {
			t.Fatal(err)
		}
		return v, pttl
	}
	const tokA, tokB = "aaaaaaaa11111111aaaaaaaa11111111", "bbbbbbbb22222222bbbbbbbb22222222"

	// Acquire sets the key with a relative expiry, once.
	if ar := acquire("k", tokA, 60000); !ar.Granted {
		t.Fatalf("acquire of a free key: %+v", ar)
	}
	if v, pttl := get("k"); v != tokA || pttl <= 59000 || pttl > 60000 {
		t.Errorf("after acquire: %q, PTTL %d", v, pttl)
	}
	// A retry with the same token (a call whose reply was lost) is granted
	// again, without touching the key.
	if ar := acquire("k", tokA, 30000); !ar.Granted {
		t.Errorf("acquire retried with the owner's token: %+v", ar)
	}
	if v, pttl := get("k"); v != tokA || pttl <= 30000 {
		t.Errorf("after a retried acquire: %q, PTTL %d (want the first call's expiry)", v, pttl)
	}
	ar := acquire("k", tokB, 60000)
	if ar.Granted || ar.HolderTTLms <= 59000 || ar.HolderTTLms > 60000 || ar.Holder != tokA[:scripts.HolderIDLen] {
		t.Errorf("acquire of a held key: %+v", ar)
	}
	if v, _ := get("k"); v != tokA {
		t.Errorf("a refused acquire changed the key to %q", v)
	}

	// Extend and Release touch only the owner's key.
	if flag(scripts.Extend, "k", tokB, 120000) {
		t.Error("extend with a foreign token succeeded")
	}
	if _, pttl := get("k"); pttl > 60000 {
		t.Errorf("a foreign extend moved the TTL to %d", pttl)
	}
	if !flag(scripts.Extend, "k", tokA, 120000) {
		t.Error("extend by the owner failed")
	}
	if _, pttl := get("k"); pttl <= 119000 || pttl > 120000 {
		t.Errorf("after extend: PTTL %d", pttl)
	}
	for _, s := range []*pool.Script{scripts.Release} {
		if flag(s, "k", tokB) {
			t.Errorf("%s with a foreign token succeeded", s.Name)
		}
		if v, _ := get("k"); v != tokA {
			t.Fatalf("a foreign %s changed the key to %q", s.Name, v)
		}
	}
	if !flag(scripts.Release, "k", tokA) {
		t.Error("release by the owner failed")
	}
	if v, _ := get("k"); v != "" {
		t.Errorf("after release the key holds %q", v)
	}
	for _, s := range []*pool.Script{scripts.Release, scripts.Extend} {
		args := []any{tokA}
		if s == scripts.Extend {
			args = append(args, 1000)
		}
		if flag(s, "k", args...) {
			t.Errorf("%s of an absent key succeeded", s.Name)
		}
	}
	if ar := acquire("k", tokB, 60000); !ar.Granted {
		t.Errorf("acquire after release: %+v", ar)
	}
	if !flag(scripts.Release, "k", tokB) {
		t.Error("release by the owner failed")
	}

	// A key without expiry is reported as such.
	if _, err := conn.Do("SET", "forever", tokB); err != nil {
		t.Fatal(err)
	}
	if ar := acquire("forever", tokA, 1000); ar.Granted || ar.HolderTTLms != -1 {
		t.Errorf("acquire of a key without expiry: %+v", ar)
	}

	// A key of another type is WRONGTYPE for acquire, and never deleted.
	if _, err := conn.Do("LPUSH", "list", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(ctx, scripts.Acquire, []string{"list", bootMarker}, tokA, 1000); !errors.Is(err, pool.ErrWrongType) {
		t.Errorf("acquire of a list = %v, want ErrWrongType", err)
	}
	for _, s := range []*pool.Script{scripts.Release} {
		reply, err := run(s, "list", tokA)
		if ok, _ := scripts.DecodeFlag(reply); err == nil && ok {
			t.Errorf("%s deleted a list", s.Name)
		}
	}
	if n, _ := redis.Int(conn.Do("LLEN", "list")); n != 1 {
		t.Errorf("the list was changed")
	}

	// A grant reports the age of the boot marker, a key that a node loses
	// with its data: it holds its birth by the node's clock and expires
	// MarkerLifeMs after it.
	ar = acquire("m", tokA, 1000)
	if ar.MarkerAgeMs < 0 {
		t.Errorf("MarkerAgeMs = %d", ar.MarkerAgeMs)
	}
	born, _ := redis.Int64(conn.Do("GET", bootMarker))
	if now := time.Now().UnixMilli(); born < now-5000 || born > now+5000 {
		t.Errorf("boot marker holds %d, local clock %d: want the node's time", born, now)
	}
	if pttl, _ := redis.Int64(conn.Do("PTTL", bootMarker)); pttl <= 0 || scripts.MarkerLifeMs-pttl < ar.MarkerAgeMs {
		t.Errorf("boot marker PTTL = %d after an age of %d, want %d minus at least that age", pttl, ar.MarkerAgeMs, int64(scripts.MarkerLifeMs))
	}
	if refused := acquire("m", tokB, 1000); refused.Granted || refused.MarkerAgeMs < ar.MarkerAgeMs {
		t.Errorf("refused acquire: %+v, want the marker's age", refused)
	}
	if again := acquire("m2", tokA, 1000); again.MarkerAgeMs < ar.MarkerAgeMs {
		t.Errorf("marker age went from %d to %d", ar.MarkerAgeMs, again.MarkerAgeMs)
	}
	if _, err := conn.Do("FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	if ar := acquire("m", tokA, 1000); ar.MarkerAgeMs != 0 || !ar.Granted {
		t.Errorf("first acquire after data loss: %+v, want granted with marker age 0", ar)
	}
	// A marker written without expiry (by an older client) keeps its birth.
	old := time.Now().UnixMilli() - 3_600_000
	if _, err := conn.Do("SET", bootMarker, old); err != nil {
		t.Fatal(err)
	}
	if ar := acquire("m3", tokA, 1000); ar.MarkerAgeMs < 3_600_000-5000 || ar.MarkerAgeMs > 3_600_000+5000 {
		t.Errorf("age of a marker written an hour ago without expiry: %d ms", ar.MarkerAgeMs)
	}
	if pttl, _ := redis.Int64(conn.Do("PTTL", bootMarker)); pttl <= 0 {
		t.Errorf("boot marker PTTL = %d after reading an old marker, want its expiry set", pttl)
	}
	if v, _ := redis.Int64(conn.Do("GET", bootMarker)); v != old {
		t.Errorf("old boot marker rewritten to %d, want %d kept", v, old)
	}
}

// Release announces on the key's channel when it deletes the key, and only
// then: a release with another token, or of an absent key, frees nothing.
func TestReleasePublishes(t *testing.T) {
	srv := redistest.Start(t, 1)[0]
	p := redistest.Pools(t, []*redistest.Server{srv})[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	psc := subscribe(t, srv.Addr, "k")
	if _, err := p.Eval(ctx, scripts.Acquire, []string{"k", bootMarker}, "tok", 60000); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"another", "tok", "tok"} {
		if _, err := p.Eval(ctx, scripts.Release, []string{"k"}, tok); err != nil {
			t.Fatal(err)
		}
	}
	// Only one message arrives: the owner's first release.
	if err := psc.Ping("end"); err != nil {
		t.Fatal(err)
	}
	var messages int
	for {
		switch m := psc.Receive().(type) {
		case redis.Message:
			messages++
			if m.Channel != "k" {
				t.Errorf("message on %q", m.Channel)
			}
		case redis.Pong:
			if messages != 1 {
				t.Errorf("%d release messages, want 1 (from the release that deleted the key)", messages)
			}
			return
		case error:
			t.Fatal(m)
		}
	}
}

// The turn queue on a real Redis: refused waiters queue in arrival order and
// keep their place; releasing on the gate promises the lock to the first and
// names it in the notice; the promise, held in the lock key, refuses the
// others and ends with the promised waiter's grant; Leave takes a waiter
// out.
func TestTurnQueueOnRedis(t *testing.T) {
	srv, p, ctx, conn := onRedis(t)
	psc := subscribe(t, srv.Addr, "q")
	turns := subscribe(t, srv.Addr, scripts.TurnChannel("q", "w1"))
	const queue = "\x00turn:q"
	queued := func(token, waiter string) scripts.AcquireReply {
		t.Helper()
		reply, err := p.Eval(ctx, scripts.Acquire, []string{"q", bootMarker, queue}, token, 60000, waiter, 5000)
		if err != nil {
			t.Fatalf("acquire by %s: %v", waiter, err)
		}
		ar, err := scripts.DecodeAcquire(reply)
		if err != nil {
			t.Fatal(err)
		}
		return ar
	}
	order := func(want ...string) {
		t.Helper()
		got, err := redis.Strings(conn.Do("ZRANGE", queue, 0, -1))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Errorf("queue = %q, want %q", got, want)
		}
	}
	releaseTurn := func(token string) bool {
		t.Helper()
		reply, err := p.Eval(ctx, scripts.ReleaseTurn, []string{"q", queue}, token, 50)
		if err != nil {
			t.Fatal(err)
		}
		ok, _ := scripts.DecodeFlag(reply)
		return ok
	}
	get := func(key string) (string, int64) {
		t.Helper()
		v, _ := redis.String(conn.Do("GET", key))
		pttl, _ := redis.Int64(conn.Do("PTTL", key))
		return v, pttl
	}
	notice := func(psc redis.PubSubConn, channel, want string) {
		t.Helper()
		switch m := psc.Receive().(type) {
		case redis.Message:
			if m.Channel != channel || string(m.Data) != want {
				t.Errorf("release notice %q on %q, want %q on %q", m.Data, m.Channel, want, channel)
			}
		default:
			t.Fatalf("got %v, want a release notice", m)
		}
	}

	if ar := queued("tokA", "w0"); !ar.Granted {
		t.Fatalf("first acquire refused: %+v", ar)
	}
	order()
	for _, w := range []string{"w1", "w2", "w1"} {
		if ar := queued("tok-"+w, w); ar.Granted || ar.Holder != "tokA" {
			t.Fatalf("acquire by %s of a held lock: %+v, want refused by tokA", w, ar)
		}
	}
	order("w1", "w2") // w1 kept its place
	if pttl, _ := redis.Int64(conn.Do("PTTL", queue)); pttl <= 0 || pttl > 5000 {
		t.Errorf("queue PTTL = %d, want its arrivals' 5000 ms", pttl)
	}
	if !releaseTurn("tokA") {
		t.Fatal("release by the holder failed")
	}
	notice(turns, scripts.TurnChannel("q", "w1"), "w1") // on w1's channel only
	order("w2")
	if v, pttl := get("q"); v != scripts.Promised+"w1" || pttl <= 0 || pttl > 50 {
		t.Errorf("promised lock holds %q for %d ms, want w1's promise for at most 50 ms", v, pttl)
	}
	// A waiter in the queue is not told when the promise ends; another
	// caller is.
	if ar := queued("tok-w2", "w2"); ar.Granted || ar.Holder != scripts.Promised+"w1" || ar.HolderTTLms != scripts.TTLUnread {
		t.Errorf("acquire by w2 of a lock promised to w1: %+v, want refused for w1's promise, its TTL unread", ar)
	}
	if reply, err := p.Eval(ctx, scripts.Acquire, []string{"q", bootMarker}, "tok-x", 60000); err != nil {
		t.Fatal(err)
	} else if ar, _ := scripts.DecodeAcquire(reply); ar.Granted || ar.HolderTTLms <= 0 || ar.HolderTTLms > 50 {
		t.Errorf("acquire outside the queue of a promised lock: %+v, want refused for the promise's time", ar)
	}
	if ar := queued("tok-w1", "w1"); !ar.Granted {
		t.Fatalf("acquire by the promised w1: %+v, want granted", ar)
	}
	if v, pttl := get("q"); v != "tok-w1" || pttl <= 50000 {
		t.Errorf("after the promised grant the lock holds %q for %d ms, want w1's token for its TTL", v, pttl)
	}
	order("w2")
	if reply, err := p.Eval(ctx, scripts.Leave, []string{queue}, "w2"); err != nil || reply != int64(1) {
		t.Errorf("Leave of a queued waiter = %v, %v; want 1", reply, err)
	}
	if reply, err := p.Eval(ctx, scripts.Leave, []string{queue}, "w2"); err != nil || reply != int64(0) {
		t.Errorf("Leave of a waiter not queued = %v, %v; want 0", reply, err)
	}
	if releaseTurn("tokA") {
		t.Error("release with a stale token succeeded")
	}
	if !releaseTurn("tok-w1") {
		t.Fatal("release by w1 failed")
	}
	notice(psc, "q", "") // nobody queued: every waiter may try
	if v, _ := get("q"); v != "" {
		t.Errorf("a release with nobody queued left the lock holding %q", v)
	}
	if ar := queued("tok-w3", "w3"); !ar.Granted {
		t.Errorf("acquire of a free lock: %+v, want granted", ar)
	}
}

// subscribe opens a Pub/Sub connection to addr subscribed to channel, closed
// when the test ends.
// TestScriptCommands counts the commands each common path of the lock
// scripts runs on the server (INFO commandstats): each is work for a node
// on every round, and cheaper paths must stay cheap.
func TestScriptCommands(t *testing.T) {
	_, p, ctx, conn := onRedis(t)
	const queue = "\x00turn:c"
	const tokA, tokB = "aaaaaaaa11111111", "bbbbbbbb22222222"
	plain := func(key, token string) func() error {
		return func() error {
			_, err := p.Eval(ctx, scripts.Acquire, []string{key, bootMarker}, token, 60000)
			return err
		}
	}
	queued := func(token, waiter string) func() error {
		return func() error {
			_, err := p.Eval(ctx, scripts.Acquire, []string{"c", bootMarker, queue}, token, 60000, waiter, 5000)
			return err
		}
	}
	release := func(s *pool.Script, keys []string, token, arg string) func() error {
		return func() error {
			_, err := p.Eval(ctx, s, keys, token, arg)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want map[string]int64 // commands run, EVALSHA included
	}{
		{"first acquire writes the marker", plain("a", tokA), map[string]int64{"evalsha": 1, "set": 2, "pttl": 1, "time": 1}},
		{"acquire granted", plain("b", tokA), map[string]int64{"evalsha": 1, "set": 1, "pttl": 1}},
		{"acquire refused", plain("b", tokB), map[string]int64{"evalsha": 1, "set": 1, "get": 1, "pttl": 2}},
		{"release", release(scripts.Release, []string{"b"}, tokA, "1"), map[string]int64{"evalsha": 1, "get": 1, "del": 1, "publish": 1}},
		{"release the gate announces", release(scripts.Release, []string{"a"}, tokA, "0"), map[string]int64{"evalsha": 1, "get": 1, "del": 1}},
		{"gate: acquire granted, nobody queued", queued(tokA, "w1"), map[string]int64{"evalsha": 1, "get": 1, "set": 1, "zrem": 1, "pttl": 1}},
		{"gate: refused, joins the queue", queued(tokB, "w2"), map[string]int64{"evalsha": 1, "get": 1, "pttl": 2, "zadd": 1, "pexpire": 1}},
		{"gate: release to the first waiter", release(scripts.ReleaseTurn, []string{"c", queue}, tokA, "50"), map[string]int64{"evalsha": 1, "get": 1, "zpopmin": 1, "set": 1, "publish": 1}},
		{"gate: refused for another's turn", queued(tokA, "w1"), map[string]int64{"evalsha": 1, "get": 1, "pttl": 1, "zadd": 1, "pexpire": 1}},
		{"gate: the promised waiter's grant", queued(tokB, "w2"), map[string]int64{"evalsha": 1, "get": 1, "set": 1, "pttl": 1}},
		{"gate: release to the next waiter", release(scripts.ReleaseTurn, []string{"c", queue}, tokB, "50"), map[string]int64{"evalsha": 1, "get": 1, "zpopmin": 1, "set": 1, "publish": 1}},
		{"gate: the promised waiter's grant, not joining", func() error {
			reply, err := p.Eval(ctx, scripts.Acquire, []string{"c", bootMarker, queue}, tokA, 60000, "w1", "0")
			if ar, _ := scripts.DecodeAcquire(reply); err == nil && !ar.Granted {
				return fmt.Errorf("refused: %+v", ar)
			}
			return err
		}, map[string]int64{"evalsha": 1, "get": 1, "set": 2, "pttl": 1}},
		{"leave", func() error { _, err := p.Eval(ctx, scripts.Leave, []string{queue}, "w1"); return err }, map[string]int64{"evalsha": 1, "zrem": 1}},
		{"gate: release with nobody queued", release(scripts.ReleaseTurn, []string{"c", queue}, tokA, "50"), map[string]int64{"evalsha": 1, "get": 1, "zpopmin": 1, "del": 1, "publish": 1}},
	} {
		calls := commandCounter(t, conn)
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := calls(); !maps.Equal(got, tc.want) {
			t.Errorf("%s ran %v, want %v", tc.name, got, tc.want)
		}
	}
}

func subscribe(t *testing.T, addr, channel string) redis.PubSubConn {
	t.Helper()
	sc, err := redis.Dial("tcp", addr, redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	psc := redis.PubSubConn{Conn: sc}
	if err := psc.Subscribe(channel); err != nil {
		t.Fatal(err)
	}
	if _, ok := psc.Receive().(redis.Subscription); !ok {
		t.Fatal("no subscription confirmation")
	}
	return psc
}

// onRedis starts a redis-server and returns it, a pool and a plain
// connection to it, and a context bounding the test's calls.
func onRedis(t *testing.T) (*redistest.Server, pool.Pool, context.Context, redis.Conn) {
	t.Helper()
	srv := redistest.Start(t, 1)[0]
	p := redistest.Pools(t, []*redistest.Server{srv})[0]
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	conn, err := redis.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return srv, p, ctx, conn
}
