package goredis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/pool/goredis"
	"github.com/quorumlock/quorumlock/redlock"
)

// BenchmarkSerialGoRedis measures one goroutine obtaining and releasing a
// free lock (Locker.Obtain + Lock.Release) over N real redis-server nodes on
// loopback, through the go-redis adapter, and through the redigo adapter on
// the same servers for comparison:
//
//	go test -run '^$' -bench SerialGoRedis -benchmem ./pool/goredis/
func BenchmarkSerialGoRedis(b *testing.B) {
	for _, n := range []int{1, 3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			servers := redistest.Start(b, n)
			b.Run("goredis", func(b *testing.B) {
				pools := make([]pool.Pool, n)
				for i, s := range servers {
					p, err := goredis.Dial(s.URL())
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { _ = p.Close() })
					pools[i] = p
				}
				benchObtainRelease(b, pools)
			})
			b.Run("redigo", func(b *testing.B) { benchObtainRelease(b, redistest.Pools(b, servers)) })
		})
	}
}

func benchObtainRelease(b *testing.B, pools []pool.Pool) {
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
