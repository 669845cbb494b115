package integration

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/redlock"
)

// requireEnv turns a missing Docker engine or image from a skip into a
// failure (CI sets it to 1).
const requireEnv = "QUORUMLOCK_REQUIRE_DOCKER"

// The suite's Docker connection, set up once by TestMain, or the reason
// there is none. Package state is unavoidable here: TestMain cannot hand
// anything to the tests otherwise.
var (
	suiteDocker *Docker
	suiteSkip   string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		suiteSkip = "SKIPPING Docker integration test: -short"
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	d, err := Connect(ctx, Image())
	if err != nil {
		cancel()
		if os.Getenv(requireEnv) == "1" {
			fmt.Fprintf(os.Stderr, "FAIL: Docker integration suite cannot run, and %s=1: %v\n", requireEnv, err)
			os.Exit(1)
		}
		suiteSkip = fmt.Sprintf("SKIPPING Docker integration test: %v (set %s=1 to make this a failure)", err, requireEnv)
		fmt.Fprintln(os.Stderr, suiteSkip)
		os.Exit(m.Run())
	}
	if n, err := d.PurgeLeftovers(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "integration: removing containers left by earlier runs: %v\n", err)
	} else if n > 0 {
		fmt.Fprintf(os.Stderr, "integration: removed %d containers left by earlier runs\n", n)
	}
	cancel()
	suiteDocker = d

	// t.Cleanup does not run when the test binary is interrupted: remove
	// the containers here, and let the next run's PurgeLeftovers catch what
	// a SIGKILL or a test timeout leaves.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "integration: %v: removing containers\n", sig)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d.PurgeOwn(ctx)
		cancel()
		os.Exit(2)
	}()

	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	d.PurgeOwn(ctx) // whatever a cleanup could not remove
	cancel()
	os.Exit(code)
}

// startCluster starts a cluster for t and removes it when t ends, or skips t
// when the suite cannot run.
func startCluster(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	if suiteDocker == nil {
		t.Skip(suiteSkip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := suiteDocker.StartCluster(ctx, cfg)
	if err != nil {
		t.Fatalf("starting the cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("removing the cluster: %v", err)
		}
	})
	t.Logf("%d nodes of %s (%v) up in %v", c.Len(), suiteDocker.Image(), cfg.Persistence, time.Since(start).Round(time.Millisecond))
	return c
}

// newClients returns n clients of c, each with its own pools, closed when t
// ends.
func newClients(t *testing.T, c *Cluster, n int, opts ...redlock.Option) []*Client {
	t.Helper()
	clients := make([]*Client, n)
	for i := range clients {
		cl, err := c.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cl.Close(); err != nil {
				t.Errorf("closing client %d: %v", i, err)
			}
		})
		clients[i] = cl
	}
	return clients
}

// lockers returns the clients' Lockers.
func lockers(clients []*Client) []*redlock.Locker {
	out := make([]*redlock.Locker, len(clients))
	for i, c := range clients {
		out[i] = c.Locker
	}
	return out
}

// newRecorder returns a recorder on the clock the Lockers use by default.
func newRecorder() *history.Recorder { return history.NewRecorder(clock.Real{}) }

// requireExclusive fails t on every overlap the checker finds, naming both
// sections, and on an empty history (a check of nothing proves nothing).
func requireExclusive(t *testing.T, rec *history.Recorder) history.Result {
	t.Helper()
	res := history.Check(rec.Sections())
	if res.Sections == 0 {
		t.Errorf("no critical section was recorded")
	}
	for _, v := range res.Overlaps() {
		t.Errorf("mutual exclusion violated: %v", v)
	}
	t.Logf("history: %v", res)
	return res
}

// logStats logs every client's tally.
func logStats(t *testing.T, stats []Stats) {
	t.Helper()
	for _, s := range stats {
		if s.LastErr != nil {
			t.Logf("%v; last error: %v", s, s.LastErr)
		} else {
			t.Log(s)
		}
	}
}

// at runs f after d unless ctx ends first, in its own goroutine, and returns
// a channel that is closed once f has returned (or was skipped).
func at(ctx context.Context, d time.Duration, f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-time.After(d):
			f()
		case <-ctx.Done():
		}
	}()
	return done
}

// each runs f on every node concurrently and returns the first error.
func each(nodes []*Node, f func(*Node) error) error {
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- f(n) }()
	}
	var first error
	for range nodes {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// contenders is how many clients contend in each scenario.
const contenders = 4

// workload returns the scenarios' usual workload on the lock called name:
// short TTLs keep the suite fast, and hold and think times let every client
// win now and then.
func workload(rec *history.Recorder, name string) Workload {
	return Workload{
		Name:           name,
		TTL:            time.Second,
		Hold:           30 * time.Millisecond,
		Think:          30 * time.Millisecond,
		AttemptTimeout: 3 * time.Second,
		Recorder:       rec,
	}
}

// progressWait bounds how long a phase may wait for its first section: on a
// loaded machine progress comes late, but a lock that makes none at all
// must fail the test, not hang it.
const progressWait = 15 * time.Second

// awaitProgress waits at least least, then until some section acquired at or
// after from has been recorded, for at most progressWait after from. It
// reports whether there was one; false when ctx ended first or the wait ran
// out.
func awaitProgress(ctx context.Context, rec *history.Recorder, from time.Time, least time.Duration) bool {
	select {
	case <-time.After(least):
	case <-ctx.Done():
		return false
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if Between(rec.Sections(), from, rec.Now()) > 0 {
			return true
		}
		if rec.Now().Sub(from) >= progressWait {
			return false
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		}
	}
}
