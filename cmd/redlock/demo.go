package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

const demoHelp = `usage: redlock demo [--nodes URL,URL,...] [--workers 50] [--stock 10] [--work 5ms]

The oversell that a lock prevents. WORKERS concurrent buyers each read a stock
of STOCK items from a plain key on the first node and, if it is above zero,
"work" a few milliseconds and write back stock-1. Without a lock they sell
more than there is. With the lock (held on a quorum of the nodes around each
read-modify-write) they sell exactly STOCK, although halfway through one node
(never the stock's) is killed.

Without --nodes or REDLOCK_NODES it starts 5 redis-server processes on
127.0.0.1 in temporary directories and kills them at exit, Ctrl-C included.
Given nodes are never stopped: the failed node is cut off from this process
instead, and the demo's keys are removed at the end.

Exit status: 0 when the locked run sold exactly STOCK, 1 otherwise, 2 for bad
flags, 130 when interrupted.

Examples:
  redlock demo
  make demo
  redlock demo --nodes redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379
`

// demoLocalNodes is how many nodes the demo starts by itself.
const demoLocalNodes = 5

// demoConfig is the scenario's shape.
type demoConfig struct {
	workers int
	stock   int
	work    time.Duration // the time a buyer spends between its read and its write
	ttl     time.Duration // the lock's TTL: far above the critical section
	patient time.Duration // how long a buyer waits for the lock
}

func (c *cli) demo(args []string) int {
	cmd := c.newCommand("demo", demoHelp)
	nf := cmd.addNodeFlags()
	cfg := demoConfig{work: 5 * time.Millisecond, ttl: 2 * time.Second, patient: time.Minute}
	cmd.fs.IntVar(&cfg.workers, "workers", 50, "concurrent buyers")
	cmd.fs.IntVar(&cfg.stock, "stock", 10, "items in stock")
	cmd.fs.DurationVar(&cfg.work, "work", cfg.work, "time a buyer spends between reading and writing the stock")
	pos, status, ok := cmd.parse(args, true)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		return cmd.usageError("unexpected argument %q", pos[0])
	}
	if cfg.workers < 1 || cfg.stock < 1 || cfg.work < 0 {
		return cmd.usageError("--workers and --stock must be positive, --work not negative")
	}
	// The lock must outlast the critical section by far.
	cfg.ttl = max(cfg.ttl, 4*cfg.work)

	ctx := onInterrupt()
	defer ctx.stop()

	var dn *demoNodes
	var err error
	if nf.list != "" || c.getenv(nodesEnv) != "" {
		urls, uerr := nf.urls(c.getenv)
		if uerr != nil {
			return cmd.usageError("%v", uerr)
		}
		if dn, err = givenDemoNodes(urls); err != nil {
			return cmd.usageError("%v", err)
		}
	} else if dn, err = startDemoNodes(ctx, demoLocalNodes); errors.Is(err, redistest.ErrNoBinary) {
		// Nothing installed: show the lock all the same, on in-process nodes.
		fmt.Fprintln(c.stdout, "redis-server not found: running on embedded in-process nodes instead "+
			"(for real servers: apt-get install redis-server, or pass --nodes URL,URL,...)")
		if dn, err = startEmbeddedNodes(demoLocalNodes); err != nil {
			return cmd.fail(exitFailed, "starting embedded nodes: %v", err)
		}
	} else if err != nil {
		if ctx.Err() != nil {
			return ctx.status()
		}
		return cmd.fail(exitFailed, "starting redis-server: %v", err)
	}
	defer dn.close()

	lk, err := redlock.New(dn.lockPools(), redlock.WithKeyPrefix(nf.prefix))
	if err != nil {
		return cmd.usageError("%v", err)
	}
	defer lk.Close()

	res, err := runDemo(ctx, cfg, dn, lk, c.stdout)
	if ctx.Err() != nil {
		fmt.Fprintln(c.stdout, "interrupted")
		return ctx.status()
	}
	if err != nil {
		return cmd.fail(exitFailed, "%v", err)
	}
	if !res.ok(cfg) {
		return exitFailed
	}
	return exitOK
}

// demoResult is what the two runs measured.
type demoResult struct {
	unlocked, locked runResult
}

func (r demoResult) ok(cfg demoConfig) bool {
	return r.locked.sold == cfg.stock && r.locked.left == 0 && r.locked.errs == 0
}

// runResult is one run's outcome.
type runResult struct {
	sold        int
	left        int64           // stock left at the end
	errs        int             // buyers that failed (lock not obtained, node errors)
	firstErr    error           // the first of them
	obtain      []time.Duration // successful Obtain calls, waiting included
	unconfirmed int             // releases that no quorum confirmed
	relErr      error           // the first of them
	failed      string          // the node taken down, if any
	failedAt    int             // the sale after which it was
	elapsed     time.Duration
}

func runDemo(ctx context.Context, cfg demoConfig, dn *demoNodes, lk *redlock.Locker, out io.Writer) (demoResult, error) {
	var res demoResult
	id := randomID()
	st := &stock{p: dn.dialed[0], key: "quorumlock-demo:" + id + ":stock"}
	defer st.remove()
	lockName := "demo:" + id

	n := len(dn.pools)
	fmt.Fprintf(out, "redlock demo: %d concurrent buyers, a stock of %d items\n", cfg.workers, cfg.stock)
	switch {
	case dn.embedded != nil:
		fmt.Fprintf(out, "nodes:   %d embedded in-process nodes (miniredis), quorum %d\n", n, lk.Quorum())
	case dn.local():
		fmt.Fprintf(out, "nodes:   %d local redis-server processes, quorum %d\n", n, lk.Quorum())
	default:
		fmt.Fprintf(out, "nodes:   %d given nodes, quorum %d\n", n, lk.Quorum())
	}
	for i, p := range dn.dialed {
		note := ""
		if i == 0 {
			note = "  (holds the stock)"
		}
		fmt.Fprintf(out, "         %s%s\n", p.Addr(), note)
	}

	if err := st.set(ctx, cfg.stock); err != nil {
		return res, fmt.Errorf("setting the stock on %s: %w", dn.dialed[0].Addr(), err)
	}
	res.unlocked = sell(ctx, cfg, st, nil)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	printRun(out, "without the lock:", cfg, res.unlocked)

	if err := st.set(ctx, cfg.stock); err != nil {
		return res, fmt.Errorf("setting the stock on %s: %w", dn.dialed[0].Addr(), err)
	}
	// The last node fails halfway: never the stock's node, and with 3 nodes
	// or more a quorum is left.
	victim := -1
	if n >= 3 {
		victim = n - 1
	}
	res.locked = sell(ctx, cfg, st, &lockedSale{lk: lk, name: lockName, dn: dn, victim: victim})
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	printRun(out, "with the lock:   ", cfg, res.locked)
	switch {
	case res.locked.failed != "":
		how := "killed"
		if !dn.local() {
			how = "cut off from this process"
		}
		fmt.Fprintf(out, "                  node %s %s after sale %d; %d of %d nodes left, quorum %d\n",
			res.locked.failed, how, res.locked.failedAt, n-1, n, lk.Quorum())
	case victim < 0:
		fmt.Fprintf(out, "                  no node taken down: with %d nodes none can be lost\n", n)
	}
	if len(res.locked.obtain) > 0 {
		med, max := stats(res.locked.obtain)
		fmt.Fprintf(out, "                  obtain latency: median %v, max %v while %d buyers queued for the lock",
			round(med), round(max), cfg.workers)
		if solo := uncontended(ctx, lk, lockName, cfg.ttl, 21); len(solo) > 0 {
			med, _ := stats(solo)
			fmt.Fprintf(out, "; median %v alone", round(med))
		}
		fmt.Fprintln(out)
	}

	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case res.ok(cfg):
		fmt.Fprintf(out, "verdict: OK: without the lock %d items were sold from a stock of %d; with it exactly %d", res.unlocked.sold, cfg.stock, res.locked.sold)
		if res.locked.failed != "" {
			fmt.Fprint(out, ", with a node down for the second half")
		}
		fmt.Fprintln(out)
	default:
		fmt.Fprintf(out, "verdict: FAILED: with the lock %d items were sold from a stock of %d (%d left, %d buyers failed)\n",
			res.locked.sold, cfg.stock, res.locked.left, res.locked.errs)
	}
	return res, nil
}

// lockedSale is how a buyer of the locked run takes the lock, and the node
// failure injected halfway.
type lockedSale struct {
	lk     *redlock.Locker
	name   string
	dn     *demoNodes
	victim int // -1: none

	mu       sync.Mutex
	failed   string
	failedAt int
}

// sell runs the buyers once, all started together, with the lock when ls is
// not nil.
func sell(ctx context.Context, cfg demoConfig, st *stock, ls *lockedSale) runResult {
	var (
		sold  atomic.Int64
		mu    sync.Mutex
		res   runResult
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.errs++
		if res.firstErr == nil {
			res.firstErr = err
		}
	}
	buy := func() (bool, error) {
		n, err := st.get(ctx)
		if err != nil || n <= 0 {
			return false, err
		}
		// The "work" between the read and the write: the window in
		// which another buyer reads the same stock.
		time.Sleep(cfg.work)
		if err := st.set(ctx, int(n-1)); err != nil {
			return false, err
		}
		return true, nil
	}
	halfway := max(1, cfg.stock/2)
	t0 := time.Now()
	for range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if ls == nil {
				ok, err := buy()
				if err != nil {
					fail(err)
				} else if ok {
					sold.Add(1)
				}
				return
			}
			octx, cancel := context.WithTimeout(ctx, cfg.patient)
			defer cancel()
			t := time.Now()
			lock, err := ls.lk.Obtain(octx, ls.name, cfg.ttl)
			if err != nil {
				fail(err)
				return
			}
			took := time.Since(t)
			mu.Lock()
			res.obtain = append(res.obtain, took)
			mu.Unlock()
			ok, err := buy()
			if err != nil {
				fail(err)
			} else if ok && int(sold.Add(1)) == halfway && ls.victim >= 0 {
				// Halfway, while this buyer still holds the lock: the
				// release below and every later obtain run with a node
				// down.
				if err := ls.dn.fail(ls.victim); err != nil {
					fail(err)
				} else {
					ls.mu.Lock()
					ls.failed, ls.failedAt = ls.dn.dialed[ls.victim].Addr(), halfway
					ls.mu.Unlock()
				}
			}
			// A release no quorum confirms is no breach: it happens when
			// the failed node was one of exactly a quorum holding the
			// lock. The reachable copies are deleted all the same, and
			// the failed node's copy expires with the TTL.
			if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
				mu.Lock()
				res.unconfirmed++
				if res.relErr == nil {
					res.relErr = err
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	res.elapsed = time.Since(t0)
	res.sold = int(sold.Load())
	if ls != nil {
		res.failed, res.failedAt = ls.failed, ls.failedAt
	}
	left, err := st.get(context.WithoutCancel(ctx))
	if err != nil {
		fail(err)
	}
	res.left = left
	return res
}

// uncontended measures n obtain-and-release rounds made one after the other,
// with nobody else wanting the lock: the latency of a quorum round itself.
func uncontended(ctx context.Context, lk *redlock.Locker, name string, ttl time.Duration, n int) []time.Duration {
	var ds []time.Duration
	for range n {
		t := time.Now()
		lock, err := lk.TryObtain(ctx, name, ttl)
		if err != nil {
			return ds
		}
		ds = append(ds, time.Since(t))
		if err := lock.Release(ctx); err != nil {
			return ds
		}
	}
	return ds
}

func printRun(out io.Writer, label string, cfg demoConfig, r runResult) {
	verdict := "exactly the stock"
	switch {
	case r.sold > cfg.stock:
		verdict = fmt.Sprintf("OVERSOLD by %d", r.sold-cfg.stock)
	case r.sold < cfg.stock:
		verdict = fmt.Sprintf("%d unsold", cfg.stock-r.sold)
	}
	fmt.Fprintf(out, "%s sold %d of %d: %s (stock key now %d, %v)\n", label, r.sold, cfg.stock, verdict, r.left, round(r.elapsed))
	if r.errs > 0 {
		fmt.Fprintf(out, "                  %d buyers failed; first: %v\n", r.errs, r.firstErr)
	}
	if r.unconfirmed > 0 {
		fmt.Fprintf(out, "                  %d releases not confirmed by a quorum (the lock's copy on a failed node expires with its TTL); first: %v\n",
			r.unconfirmed, r.relErr)
	}
}

// stats returns the median and the maximum of ds.
func stats(ds []time.Duration) (median, max time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// stock is the plain counter the buyers decrement: deliberately a GET and a
// SET, not an atomic DECR, so that only the lock keeps it right.
type stock struct {
	p   *pool.Redigo
	key string
}

func (s *stock) get(ctx context.Context) (int64, error) {
	conn, err := s.p.Redis().GetContext(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	v, err := redis.String(pool.Do(ctx, conn, "GET", s.key))
	if err != nil {
		return 0, fmt.Errorf("reading the stock: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, errors.New("the stock key does not hold a number")
	}
	return n, nil
}

func (s *stock) set(ctx context.Context, n int) error {
	conn, err := s.p.Redis().GetContext(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := pool.Do(ctx, conn, "SET", s.key, n, "PX", int64(time.Hour/time.Millisecond)); err != nil {
		return fmt.Errorf("writing the stock: %w", err)
	}
	return nil
}

func (s *stock) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := s.p.Redis().GetContext(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = pool.Do(ctx, conn, "DEL", s.key)
}
