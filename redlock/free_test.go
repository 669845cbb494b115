package redlock_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/redlock"
)

// A lock not known to be contended is asked for with SET NX PX and the boot
// marker's PTTL, pipelined, and no script (scripts.FreeAcquire): once the
// nodes have their markers, obtaining a free lock runs no EVALSHA. A lock
// held by another owner is refused by the pipeline, and the script then
// reports who holds it, as for any refusal.
func TestRedisFreeLockWithoutScript(t *testing.T) {
	servers := redistest.Start(t, 3)
	lk, _ := realLocker(t, servers)
	ctx := realCtx(t)
	obtainOnAll := func(lk *redlock.Locker, name string) *redlock.Lock {
		t.Helper()
		l, err := lk.Obtain(ctx, name, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// The round is decided by a quorum: let the last node's call land.
		eventually(t, name+" set on every node", func() bool {
			for _, s := range servers {
				if v, _ := value(t, s, redlock.DefaultKeyPrefix+name); v != l.Token() {
					return false
				}
			}
			return true
		})
		return l
	}
	warm := obtainOnAll(lk, "warm") // the first call to a node writes its marker
	if err := warm.Release(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "warm released on every node", func() bool {
		for _, s := range servers {
			if _, held := value(t, s, redlock.DefaultKeyPrefix+"warm"); held {
				return false
			}
		}
		return true
	})
	scripts := func() (n int) {
		for _, s := range servers {
			n += commandCalls(t, s, "evalsha")
		}
		return n
	}
	before := scripts()
	l := obtainOnAll(lk, "free")
	if n := scripts() - before; n != 0 {
		t.Errorf("obtaining a free lock ran %d scripts, want none", n)
	}
	other, _ := realLocker(t, servers)
	_, err := other.TryObtain(ctx, "free", time.Minute)
	var qe *redlock.QuorumError
	if !errors.Is(err, redlock.ErrHeld) || !errors.As(err, &qe) {
		t.Fatalf("TryObtain of a held lock = %v, want a *QuorumError matching ErrHeld", err)
	}
	for _, v := range qe.Votes {
		if v.Answered && (v.Yes || v.Holder != l.Token()[:len(v.Holder)] || v.Holder == "" || v.HolderTTL <= 0) {
			t.Errorf("vote %+v, want a refusal naming the holder %s… with its TTL", v, l.Token()[:8])
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// The waiter the gate names takes the lock on the other nodes with the plain
// commands too: the last holder released them before the gate, so they are
// most likely free. Only the gate, which keeps the promise, runs a script. A
// node that gets the waiter's commands before the holder's release refuses
// them and runs the script: over several handoffs, not all can.
func TestRedisNamedWaiterAsksTheOthersWithoutScript(t *testing.T) {
	servers := redistest.Start(t, 3)
	holder, _ := realLocker(t, servers)
	waiter, _ := realLocker(t, servers)
	ctx := realCtx(t)
	const handoffs = 5
	scripted, asked := 0, 0
	for h := range handoffs {
		name := fmt.Sprintf("named-%d", h)
		key := redlock.DefaultKeyPrefix + name
		holds := func(token string) func() bool {
			return func() bool {
				for _, s := range servers {
					if v, _ := value(t, s, key); v != token {
						return false
					}
				}
				return true
			}
		}
		l, err := holder.Obtain(ctx, name, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the lock set on every node", holds(l.Token()))
		got := make(chan result, 1)
		go func() {
			wl, err := waiter.Obtain(ctx, name, time.Minute)
			got <- result{wl, err}
		}()
		gate := -1
		eventually(t, "the waiter queued at the gate", func() bool {
			for i, s := range servers {
				for _, k := range do(t, s, "KEYS", "*turn:*"+name).([]any) {
					if n, _ := redis.Int(do(t, s, "ZCARD", k), nil); n == 1 {
						gate = i
						return true
					}
				}
			}
			return false
		})
		before := make([]int, len(servers))
		for i, s := range servers {
			before[i] = commandCalls(t, s, "evalsha")
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		// Every node has answered the waiter: it holds the waiter's key, or
		// ran the script after refusing the plain commands.
		eventually(t, "every node answered the waiter", func() bool {
			for i, s := range servers {
				if v, _ := value(t, s, key); v != r.lock.Token() && commandCalls(t, s, "evalsha")-before[i] < 2 {
					return false
				}
			}
			return true
		})
		// Each node ran the holder's release (one script); the gate, which
		// keeps the promise, runs the waiter's acquire script anyway.
		for i, s := range servers {
			if i != gate {
				scripted += commandCalls(t, s, "evalsha") - before[i] - 1
				asked++
			}
		}
		if err := r.lock.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if scripted >= asked {
		t.Errorf("the other nodes ran a script for the named waiter every time (%d of %d)", scripted, asked)
	}
}
