package redlock_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// BenchmarkSerial measures one goroutine obtaining and releasing a free lock,
// over N real redis-server nodes on loopback:
//
//	lock   Locker.Obtain + Lock.Release
//	floor  the least a Redlock round can do over the same redigo pools: a
//	       random token, SET key token NX PX in parallel on every node, then
//	       the owner-checked delete by EVALSHA in parallel, with plain redigo
//	       calls (no context, no votes, no validity, no cleanup).
//
// The ratio lock/floor is the coordinator's own cost.
func BenchmarkSerial(b *testing.B) {
	for _, n := range []int{1, 3, 5, 7} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			servers := redistest.Start(b, n)
			pools := redistest.Pools(b, servers)
			b.Run("lock", func(b *testing.B) { benchLock(b, pools) })
			b.Run("floor", func(b *testing.B) { benchFloor(b, pools) })
		})
	}
}

func benchLock(b *testing.B, pools []pool.Pool) {
	lk, err := redlock.New(pools)
	if err != nil {
		b.Fatal(err)
	}
	defer lk.Close()
	ctx := context.Background()
	round := func() {
		l, err := lk.Obtain(ctx, "bench", 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	round() // load the scripts and open the connections
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		round()
	}
}

// floorRelease is the owner-checked delete of the floor round.
const floorRelease = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`

// floor is the least a Redlock round can do over redigo pools: parallel
// SET key token NX PX, then a parallel owner-checked delete by EVALSHA, with
// plain redigo calls (no context, no votes, no validity, no clean-up).
type floor struct {
	rps    []*redis.Pool
	shas   []string
	quorum int
	key    string
}

func newFloor(b *testing.B, pools []pool.Pool, key string) *floor {
	f := &floor{rps: make([]*redis.Pool, len(pools)), shas: make([]string, len(pools)), quorum: len(pools)/2 + 1, key: key}
	for i, p := range pools {
		f.rps[i] = p.(*pool.Redigo).Redis()
		c := f.rps[i].Get()
		sha, err := redis.String(c.Do("SCRIPT", "LOAD", floorRelease))
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		f.shas[i] = sha
	}
	return f
}

// fanout runs op on every node at once and counts its yes answers.
func (f *floor) fanout(op func(c redis.Conn, i int) bool) int {
	var wg sync.WaitGroup
	var yes atomic.Int32
	for i, rp := range f.rps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := rp.Get()
			defer c.Close()
			if op(c, i) {
				yes.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(yes.Load())
}

// acquire makes one attempt with a new token and returns the token and how
// many nodes granted it.
func (f *floor) acquire() (string, int) {
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	return token, f.fanout(func(c redis.Conn, _ int) bool {
		r, err := c.Do("SET", f.key, token, "NX", "PX", 10000)
		return err == nil && r != nil
	})
}

// release deletes the key wherever it holds token.
func (f *floor) release(token string) {
	f.fanout(func(c redis.Conn, i int) bool {
		n, err := redis.Int(c.Do("EVALSHA", f.shas[i], 1, f.key, token))
		return err == nil && n == 1
	})
}

func benchFloor(b *testing.B, pools []pool.Pool) {
	f := newFloor(b, pools, "quorumlock:bench-floor")
	round := func() {
		token, got := f.acquire()
		if got < f.quorum {
			b.Fatalf("floor: %d of %d nodes granted", got, len(f.rps))
		}
		f.release(token)
	}
	round()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		round()
	}
}
