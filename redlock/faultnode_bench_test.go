package redlock_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// Benchmarks of a serial Obtain and Release of a free lock over 5 real
// redis-server nodes when one node is slow or hung. A quorum is 3, so one
// bad node should cost a Redlock caller nothing: these show whether it does,
// against the floor round of BenchmarkSerial, which waits for every node.
//
// Obtain and Release are timed apart and reported as percentiles in ms
// (obtain-p50-ms, obtain-p99-ms, release-p50-ms, release-p99-ms); ns/op is
// the whole round.
//
// The lock sub-benchmarks with a bad node pair each of their rounds with one
// on a healthy cluster (a Locker of its own, every node answering), timed
// the same way and reported as healthy-obtain-p99-ms and
// healthy-release-p99-ms, with the bad case's p99 over the healthy one's as
// obtain-p99-x and release-p99-x; their ns/op is both rounds. On a shared
// machine a hiccup of a few ms lands in the p99 of whichever benchmark runs
// while it lasts: rounds taken in turns meet the same hiccups, so the ratio
// compares the nodes, not the moments. The healthy/lock rows are measured on
// their own, as before.

// BenchmarkSlowNode puts one of the 5 nodes behind a redistest.Proxy that
// delays each of its replies by 20ms, as a node on a bad link or one busy
// with a slow command would answer:
//
//	healthy/lock      Locker.Obtain + Lock.Release, every node direct
//	healthy/floor     the floor round (bench_test.go), every node direct
//	proxied/lock      the Locker with the fifth node behind the same kind of
//	                  proxy, without delay: the proxy's own cost
//	slow=20ms/lock    the Locker with the fifth node 20ms late
//	slow=20ms/floor   the floor round with the fifth node 20ms late: it
//	                  waits for every node, so it pays the delay twice a round
//	down/lock         the Locker with the fifth node's port closed (a node
//	                  down, or restarting): every connection is refused
//
// The slow sub-benchmarks also report slow-node-dials/op, the connections
// the slow node's pool opened per round: a straggler still waiting for the
// slow node holds a connection, so rounds faster than the delay need more of
// them than a pool keeps idle.
func BenchmarkSlowNode(b *testing.B) {
	const slow = 20 * time.Millisecond
	servers := redistest.Start(b, 5)
	healthy := redistest.Pools(b, servers)
	proxy := redistest.NewProxy(b, servers[4].Addr)
	proxy.SetDelay(slow)
	slowed := append(redistest.Pools(b, servers[:4]), proxiedPool(b, proxy))
	// The same path with no delay: what the in-process proxy itself costs
	// the client's 2 cores, which a remote slow node would not.
	direct := redistest.NewProxy(b, servers[4].Addr)
	proxied := append(redistest.Pools(b, servers[:4]), proxiedPool(b, direct))

	b.Run("healthy/lock", func(b *testing.B) {
		benchLockRounds(b, newBenchLocker(b, healthy), "slownode-healthy")
	})
	b.Run("healthy/floor", func(b *testing.B) {
		benchFloorRounds(b, newFloor(b, healthy, "quorumlock:slownode-healthy-floor"))
	})
	b.Run("proxied/lock", func(b *testing.B) {
		benchLockRounds(b, newBenchLocker(b, proxied), "slownode-proxied")
	})
	b.Run(fmt.Sprintf("slow=%v/lock", slow), func(b *testing.B) {
		dials := proxy.Accepted()
		benchPairedRounds(b, newBenchLocker(b, slowed), "slownode-slow", newBenchLocker(b, healthy))
		b.ReportMetric(float64(proxy.Accepted()-dials)/float64(b.N), "slow-node-dials/op")
	})
	b.Run("down/lock", func(b *testing.B) {
		down := append(redistest.Pools(b, servers[:4]), closedPortPool(b))
		benchPairedRounds(b, newBenchLocker(b, down), "slownode-down", newBenchLocker(b, healthy))
	})
	b.Run(fmt.Sprintf("slow=%v/floor", slow), func(b *testing.B) {
		f := newFloor(b, slowed, "quorumlock:slownode-slow-floor")
		dials := proxy.Accepted()
		benchFloorRounds(b, f)
		b.ReportMetric(float64(proxy.Accepted()-dials)/float64(b.N), "slow-node-dials/op")
	})
}

// BenchmarkHungNode pauses one of the 5 nodes with SIGSTOP once the Locker
// has made a round with it: its connections stay open and it never answers,
// the worst a node can do. The Locker does not wait for it, but until the
// first call to it has run out the per-node timeout (1s for a 10s lock),
// each round leaves a straggler waiting on it; from then on the node is
// skipped (silence.go), but for one probe a second.
//
//	healthy/lock      Locker.Obtain + Lock.Release, every node answering
//	hung/lock           the same with the fifth node paused, timed from
//	                    the moment it stops: the first second piles up
//	                    stragglers
//	hung-after-3s/lock  the same, timed once the stragglers of the first
//	                    second (and their clean-ups) have timed out
//
// Besides the percentiles it reports:
//
//	goroutines          goroutines alive at the end of the timed loop minus
//	                    at its start: the stragglers in flight, bounded by
//	                    the round rate times the two node timeouts, not by
//	                    b.N (run with -benchtime 5s to see it level off)
//	goroutines-left     the same after Locker.Close: Close must leave none
//	close-ms            how long Close waited for the last stragglers
//	hung-node-conns/op  connections the hung node found queued when it was
//	                    resumed, per round: each straggler dials afresh,
//	                    since a connection whose call timed out is dropped.
//	                    The node's listen backlog caps the count, so only a
//	                    short run (-benchtime 200x) shows the true rate.
func BenchmarkHungNode(b *testing.B) {
	servers := redistest.Start(b, 5)
	pools := redistest.Pools(b, servers)
	// The healthy cluster the hung rounds are paired with.
	healthy := redistest.Pools(b, redistest.Start(b, 5))
	b.Run("healthy/lock", func(b *testing.B) { benchHungNode(b, pools, nil, 0, nil) })
	b.Run("hung/lock", func(b *testing.B) { benchHungNode(b, pools, servers[4], 0, healthy) })
	b.Run("hung-after-3s/lock", func(b *testing.B) { benchHungNode(b, pools, servers[4], 3*time.Second, healthy) })
}

// benchHungNode runs the lock rounds of BenchmarkHungNode; hung, when set,
// is the server of the last pool, paused after the warm-up round, and the
// timed rounds start after untimed ones for settle. With paired set, each
// timed round is followed by one over those pools (see above).
func benchHungNode(b *testing.B, pools []pool.Pool, hung *redistest.Server, settle time.Duration, paired []pool.Pool) {
	lk, err := redlock.New(pools)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = lk.Close() }) // after a failure; Close is idempotent
	name := "hungnode-healthy"
	if hung != nil {
		name = "hungnode-hung"
	}
	timedLockRound(b, lk, name, nil) // every node answers once: scripts, connections
	var conns int64
	if hung != nil {
		conns = connectionsReceived(b, pools[len(pools)-1])
		if err := hung.Pause(); err != nil {
			b.Fatal(err)
		}
		// Registered after the Locker's Close: cleanups run last first, so
		// a failed run resumes the node before Close waits on it.
		b.Cleanup(func() { _ = hung.Resume() })
	}
	// The warm-up round's own stragglers (the nodes not waited for, and
	// its release's) end within a few round trips: let them, or they would
	// count against the loop.
	time.Sleep(20 * time.Millisecond)
	for start := time.Now(); time.Since(start) < settle; {
		timedLockRound(b, lk, name, nil)
	}
	var ref *redlock.Locker
	if paired != nil {
		ref = newBenchLocker(b, paired)
		timedLockRound(b, ref, "hungnode-paired", nil)
	}
	base := runtime.NumGoroutine()
	var rt, healthy roundTimes
	for b.Loop() {
		timedLockRound(b, lk, name, &rt)
		if ref != nil {
			timedLockRound(b, ref, "hungnode-paired", &healthy)
		}
	}
	inFlight := runtime.NumGoroutine() - base
	start := time.Now()
	if err := lk.Close(); err != nil {
		b.Fatal(err)
	}
	closing := time.Since(start)
	left := runtime.NumGoroutine() - base
	rt.report(b)
	if ref != nil {
		rt.reportAgainst(b, &healthy)
	}
	b.ReportMetric(float64(inFlight), "goroutines")
	b.ReportMetric(float64(left), "goroutines-left")
	b.ReportMetric(float64(closing)/float64(time.Millisecond), "close-ms")
	if hung != nil {
		if err := hung.Resume(); err != nil {
			b.Fatal(err)
		}
		// The resumed node accepts what queued up in its listen backlog
		// (up to its size; dials beyond it timed out unanswered).
		time.Sleep(100 * time.Millisecond)
		conns = connectionsReceived(b, pools[len(pools)-1]) - conns
		b.ReportMetric(float64(conns)/float64(b.N), "hung-node-conns/op")
		// Let it run what queued up before the next run pauses it again.
		time.Sleep(time.Second)
	}
}

// closedPortPool returns a pool for a loopback port nothing listens on, closed
// when b ends.
func closedPortPool(b *testing.B) pool.Pool {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		b.Fatal(err)
	}
	p, err := pool.Dial("redis://" + addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// proxiedPool returns a pool that reaches the node behind proxy through it,
// closed when b ends.
func proxiedPool(b *testing.B, proxy *redistest.Proxy, opts ...pool.DialOption) pool.Pool {
	b.Helper()
	p, err := pool.Dial(proxy.URL(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// roundTimes holds each timed round's Obtain and Release apart: a slow or
// hung node can cost one half and not the other, and only the tail shows a
// cost paid now and then (a straggler blocking the next round, a dial).
type roundTimes struct {
	obtain, release []time.Duration
}

func (rt *roundTimes) add(obtain, release time.Duration) {
	rt.obtain = append(rt.obtain, obtain)
	rt.release = append(rt.release, release)
}

func (rt *roundTimes) report(b *testing.B) {
	b.ReportMetric(percentileMs(rt.obtain, 0.50), "obtain-p50-ms")
	b.ReportMetric(percentileMs(rt.obtain, 0.99), "obtain-p99-ms")
	b.ReportMetric(percentileMs(rt.release, 0.50), "release-p50-ms")
	b.ReportMetric(percentileMs(rt.release, 0.99), "release-p99-ms")
}

// reportAgainst adds healthy's p99s to b's metrics, and rt's over them.
func (rt *roundTimes) reportAgainst(b *testing.B, healthy *roundTimes) {
	for _, side := range []struct {
		name           string
		bad, reference []time.Duration
	}{{"obtain", rt.obtain, healthy.obtain}, {"release", rt.release, healthy.release}} {
		ref := percentileMs(side.reference, 0.99)
		b.ReportMetric(ref, "healthy-"+side.name+"-p99-ms")
		if ref > 0 {
			b.ReportMetric(percentileMs(side.bad, 0.99)/ref, side.name+"-p99-x")
		}
	}
}

// percentileMs returns the p-quantile of ds in milliseconds, ds itself left
// unsorted.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(p*float64(len(s)-1))]) / float64(time.Millisecond)
}

// timedLockRound obtains the free lock name and releases it, adding the
// time of each to rt when rt is set.
func timedLockRound(b *testing.B, lk *redlock.Locker, name string, rt *roundTimes) {
	ctx := context.Background()
	t0 := time.Now()
	l, err := lk.Obtain(ctx, name, 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	if err := l.Release(ctx); err != nil {
		b.Fatal(err)
	}
	if rt != nil {
		rt.add(t1.Sub(t0), time.Since(t1))
	}
}

// timedFloorRound is timedLockRound for the floor round.
func timedFloorRound(b *testing.B, f *floor, rt *roundTimes) {
	t0 := time.Now()
	token, got := f.acquire()
	if got < f.quorum {
		b.Fatalf("floor: %d of %d nodes granted", got, len(f.rps))
	}
	t1 := time.Now()
	f.release(token)
	if rt != nil {
		rt.add(t1.Sub(t0), time.Since(t1))
	}
}

// benchLockRounds times serial lock rounds of lk on the free lock name.
func benchLockRounds(b *testing.B, lk *redlock.Locker, name string) {
	timedLockRound(b, lk, name, nil) // load the scripts, open the connections
	var rt roundTimes
	for b.Loop() {
		timedLockRound(b, lk, name, &rt)
	}
	rt.report(b)
}

// benchPairedRounds times serial lock rounds of lk on the free lock name, each
// followed by one of ref, a Locker on healthy nodes (see above), and reports
// both.
func benchPairedRounds(b *testing.B, lk *redlock.Locker, name string, ref *redlock.Locker) {
	const refName = "paired-healthy"
	timedLockRound(b, lk, name, nil) // load the scripts, open the connections
	timedLockRound(b, ref, refName, nil)
	var rt, paired roundTimes
	for b.Loop() {
		timedLockRound(b, lk, name, &rt)
		timedLockRound(b, ref, refName, &paired)
	}
	rt.report(b)
	rt.reportAgainst(b, &paired)
}

// benchFloorRounds times serial floor rounds of f.
func benchFloorRounds(b *testing.B, f *floor) {
	timedFloorRound(b, f, nil)
	var rt roundTimes
	for b.Loop() {
		timedFloorRound(b, f, &rt)
	}
	rt.report(b)
}

// connectionsReceived returns the node's total_connections_received.
func connectionsReceived(b *testing.B, p pool.Pool) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := p.(pool.Commander).Command(ctx, "INFO", "stats")
	if err != nil {
		b.Fatal(err)
	}
	info, _ := redis.String(reply, nil)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_connections_received:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO stats has no total_connections_received")
	return 0
}
