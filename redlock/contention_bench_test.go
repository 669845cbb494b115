package redlock_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// contender obtains the contended lock and returns how to release it.
type contender func(ctx context.Context) (release func(), err error)

// contention is what one contention run measured.
type contention struct {
	acquisitions, handoffs, overlaps int
	elapsed                          time.Duration
	waits                            []time.Duration
	perContender                     []int
	commands, requests               int64
	worked                           time.Duration // summed over acquisitions
}

// contend runs the contenders against each other until total acquisitions
// are made, each holding the lock for work. direct names the data commands
// the contenders send themselves, not from inside a script (see requests).
func contend(b *testing.B, pools []pool.Pool, cs []contender, work time.Duration, total int, direct ...string) contention {
	b.Helper()
	ctx := context.Background()
	var (
		mu       sync.Mutex
		res      = contention{perContender: make([]int, len(cs))}
		holders  atomic.Int32
		last     atomic.Int32
		left     atomic.Int64
		wg       sync.WaitGroup
		failures atomic.Int64
	)
	last.Store(-1)
	left.Store(int64(total))
	before, reqBefore := totalCommands(b, pools), requests(b, pools, direct)
	start := time.Now()
	for i, obtain := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				release, err := obtain(ctx)
				if err != nil {
					failures.Add(1)
					continue
				}
				waited := time.Since(t0)
				overlap := holders.Add(1) != 1
				handoff := last.Swap(int32(i)) != int32(i)
				var worked time.Duration
				if work > 0 {
					worked = hold(work)
				}
				holders.Add(-1)
				release()
				mu.Lock()
				res.acquisitions++
				res.worked += worked
				res.waits = append(res.waits, waited)
				res.perContender[i]++
				if overlap {
					res.overlaps++
				}
				if handoff {
					res.handoffs++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.commands = totalCommands(b, pools) - before
	res.requests = requests(b, pools, direct) - reqBefore
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d obtains failed", n)
	}
	return res
}

// hold is the holder's work: it takes d, to within a few µs, and returns
// how long it took. It sleeps the thread (nanosleep) for all but the last
// holdSpin, which it spins through: like work that waits on I/O, it ends
// when its time is up, as a socket wakes its reader when the data arrives.
// A time.Sleep would not: the runtime's timers wake late, the more so the
// busier the machine (a 1ms sleep lasted 1.17ms on average for the lock's
// holders, and 1.46ms for those of the floor's 16 pollers, in one run), and
// the rows would then compare how much the contenders load a shared
// machine, not their handoffs.
func hold(d time.Duration) time.Duration {
	start := time.Now()
	end := start.Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return time.Since(start)
		}
		if left > holdSpin {
			ts := syscall.NsecToTimespec(int64(left - holdSpin))
			_ = syscall.Nanosleep(&ts, nil)
		}
	}
}

// holdSpin is how much of hold's time is spun: more than a nanosleep
// overshoots at the 99th percentile here (about 0.15ms).
const holdSpin = 200 * time.Microsecond

func (c contention) report(b *testing.B, work time.Duration) {
	slices.Sort(c.waits)
	pct := func(p float64) float64 {
		if len(c.waits) == 0 {
			return 0
		}
		return float64(c.waits[int(p*float64(len(c.waits)-1))]) / float64(time.Millisecond)
	}
	secs := c.elapsed.Seconds()
	b.ReportMetric(float64(c.acquisitions)/secs, "acq/s")
	b.ReportMetric(float64(c.handoffs)/secs, "handoffs/s")
	b.ReportMetric(pct(0.5), "wait-p50-ms")
	b.ReportMetric(pct(0.99), "wait-p99-ms")
	b.ReportMetric(float64(c.commands)/float64(max(c.acquisitions, 1)), "cmds/acq")
	b.ReportMetric(float64(c.requests)/float64(max(c.acquisitions, 1)), "reqs/acq")
	b.ReportMetric(float64(slices.Min(c.perContender))/float64(max(slices.Max(c.perContender), 1)), "fairness")
	b.ReportMetric(float64(c.overlaps), "overlaps")
	if work > 0 {
		// The nominal work, and the time the holders actually spent in it
		// (hold overshoots by a few µs).
		b.ReportMetric(float64(c.acquisitions)*work.Seconds()/secs, "utilization")
		b.ReportMetric(c.worked.Seconds()/secs, "busy")
	}
	if c.overlaps > 0 {
		b.Errorf("%d overlapping holders", c.overlaps)
	}
}

// BenchmarkContended has 16 contenders take turns on one lock over 5 nodes,
// holding it for 0 or 1ms each time. ns/op is the time per acquisition.
//
//	lock/lockers=1    16 goroutines sharing one Locker
//	lock/lockers=16   16 Lockers with their own pools, as 16 processes
//	floor-poll-1-5ms  16 floor rounds (parallel SET NX PX, owner-checked
//	                  delete) retried after a random 1-5ms, as 16 processes
//	poll-50-250ms     the same retried after 50-250ms (redsync's delays)
func BenchmarkContended(b *testing.B) {
	servers := redistest.Start(b, 5)
	const contenders = 16
	for _, work := range []time.Duration{0, time.Millisecond} {
		b.Run(fmt.Sprintf("work=%v", work), func(b *testing.B) {
			b.Run("lock/lockers=1", func(b *testing.B) {
				pools := redistest.Pools(b, servers, pool.WithMaxIdle(contenders))
				lk := newBenchLocker(b, pools)
				cs := make([]contender, contenders)
				for i := range cs {
					cs[i] = lockContender(lk)
				}
				contend(b, pools, cs, work, b.N).report(b, work)
			})
			b.Run("lock/lockers=16", func(b *testing.B) {
				cs := make([]contender, contenders)
				var all []pool.Pool
				for i := range cs {
					pools := redistest.Pools(b, servers, pool.WithMaxIdle(2))
					all = pools
					cs[i] = lockContender(newBenchLocker(b, pools))
				}
				contend(b, all, cs, work, b.N).report(b, work)
			})
			b.Run("floor-poll-1-5ms", func(b *testing.B) {
				cs := make([]contender, contenders)
				var all []pool.Pool
				for i := range cs {
					pools := redistest.Pools(b, servers, pool.WithMaxIdle(2))
					all = pools
					cs[i] = floorContender(b, pools, time.Millisecond, 5*time.Millisecond)
				}
				contend(b, all, cs, work, b.N, "set").report(b, work)
			})
			b.Run("poll-50-250ms", func(b *testing.B) {
				cs := make([]contender, contenders)
				var all []pool.Pool
				for i := range cs {
					pools := redistest.Pools(b, servers, pool.WithMaxIdle(2))
					all = pools
					cs[i] = floorContender(b, pools, 50*time.Millisecond, 250*time.Millisecond)
				}
				contend(b, all, cs, work, b.N, "set").report(b, work)
			})
		})
	}
}

func newBenchLocker(b *testing.B, pools []pool.Pool, opts ...redlock.Option) *redlock.Locker {
	lk, err := redlock.New(pools, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = lk.Close() })
	return lk
}

func lockContender(lk *redlock.Locker) contender {
	return func(ctx context.Context) (func(), error) {
		l, err := lk.Obtain(ctx, "contended", 10*time.Second)
		if err != nil {
			return nil, err
		}
		return func() { _ = l.Release(ctx) }, nil
	}
}

// floorContender is the floor round of BenchmarkSerial retried after a
// random pause in [lo, hi] until it wins a quorum; a failed round deletes
// what it got.
func floorContender(b *testing.B, pools []pool.Pool, lo, hi time.Duration) contender {
	f := newFloor(b, pools, "quorumlock:contended-floor")
	return func(ctx context.Context) (func(), error) {
		for {
			token, got := f.acquire()
			if got >= f.quorum {
				return func() { f.release(token) }, nil
			}
			if got > 0 {
				f.release(token)
			}
			time.Sleep(lo + mrand.N(hi-lo+1))
		}
	}
}

// totalCommands sums total_commands_processed over the nodes.
func totalCommands(b *testing.B, pools []pool.Pool) int64 {
	var sum int64
	for _, p := range pools {
		for _, line := range info(b, p, "stats") {
			if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// info returns the lines of one INFO section of the node behind p.
func info(b *testing.B, p pool.Pool, section string) []string {
	reply, err := p.(pool.Commander).Command(context.Background(), "INFO", section)
	if err != nil {
		b.Fatal(err)
	}
	text, _ := redis.String(reply, nil)
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return lines
}

// clientCommands are the commands only clients send in these benchmarks:
// whatever else a node counts ran inside a script, except the data commands
// a contender sends itself (the floor's SET).
var clientCommands = []string{"evalsha", "eval", "script", "subscribe", "unsubscribe", "ping", "info", "config", "client", "hello", "select", "auth"}

// requests sums over the nodes the calls of the commands clients sent
// (INFO commandstats): an EVALSHA counts once, what its script runs does not.
// direct names the data commands the clients also send themselves.
func requests(b *testing.B, pools []pool.Pool, direct []string) int64 {
	count := map[string]bool{}
	for _, c := range append(slices.Clone(clientCommands), direct...) {
		count[c] = true
	}
	var sum int64
	for _, p := range pools {
		for _, line := range info(b, p, "commandstats") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
			if !ok || !count[name] {
				continue
			}
			calls, _, _ := strings.Cut(rest, ",")
			n, _ := strconv.ParseInt(calls, 10, 64)
			sum += n
		}
	}
	return sum
}

// BenchmarkKeepAlive10k holds 10,000 automatically renewed locks (TTL 3s)
// for 10s on 5 nodes and reports what renewal costs: goroutines added,
// heap, Redis commands per second per node, and client CPU. It runs once,
// whatever b.N.
func BenchmarkKeepAlive10k(b *testing.B) {
	const locks, hold, ttl = 10000, 10 * time.Second, 3 * time.Second
	servers := redistest.Start(b, 5)
	pools := redistest.Pools(b, servers, pool.WithMaxIdle(64))
	lk := newBenchLocker(b, pools)
	ctx := context.Background()
	baseG := runtime.NumGoroutine()
	held := make([]*redlock.Lock, 0, locks)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < locks; i += 32 {
				l, err := lk.Obtain(ctx, "renewed-"+strconv.Itoa(i), ttl)
				if err == nil {
					err = l.KeepAlive()
				}
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				held = append(held, l)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	runtime.GC()
	cmds0, cpu0 := totalCommands(b, pools), cpuTime()
	start := time.Now()
	maxG := 0
	for time.Since(start) < hold {
		maxG = max(maxG, runtime.NumGoroutine()-baseG)
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cmds, cpu := totalCommands(b, pools)-cmds0, cpuTime()-cpu0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	lost := 0
	for _, l := range held {
		if l.Err() != nil {
			lost++
		}
		_ = l.Release(ctx)
	}
	b.ReportMetric(float64(maxG), "goroutines")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(cmds)/elapsed.Seconds()/float64(len(pools)), "cmds/s/node")
	b.ReportMetric(cpu.Seconds()/elapsed.Seconds(), "client-cpu")
	b.ReportMetric(float64(lost), "lost")
	if lost > 0 {
		b.Errorf("%d of %d locks lost while kept alive", lost, locks)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Fprintln(os.Stderr, "getrusage:", err)
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
