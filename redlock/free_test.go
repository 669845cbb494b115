package redlock_test

import (
	"errors"
	"testing"
	"time"

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
