package redlock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// Three independent Redis masters; a quorum is two of them. Dial does not
// connect, and New does not contact the nodes, so this runs without Redis.
func ExampleNew() {
	var nodes []pool.Pool
	for _, url := range []string{"redis://127.0.0.1:6379", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"} {
		p, err := pool.Dial(url)
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		nodes = append(nodes, p)
	}
	lk, err := redlock.New(nodes)
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()
	fmt.Println("quorum:", lk.Quorum(), "of", lk.Nodes())

	// One server must never vote twice: listing it again, even as another
	// database or with the default port spelled out, is refused.
	again, err := pool.Dial("redis://127.0.0.1/1")
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close()
	_, err = redlock.New([]pool.Pool{nodes[0], nodes[1], nodes[2], again})
	fmt.Println("duplicate refused:", errors.Is(err, redlock.ErrInvalid))
	// Output:
	// quorum: 2 of [127.0.0.1:6379 127.0.0.1:6380 127.0.0.1:6381]
	// duplicate refused: true
}

// Obtain waits until the lock is free (or ctx ends), then the critical
// section runs while the lock is valid.
func ExampleLocker_Obtain() {
	var nodes []pool.Pool
	for _, url := range []string{"redis://127.0.0.1:6379", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"} {
		p, err := pool.Dial(url)
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		nodes = append(nodes, p)
	}
	lk, err := redlock.New(nodes)
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lock, err := lk.Obtain(ctx, "orders:42", 10*time.Second)
	if err != nil {
		// Matches ctx's error, and the reason of the last attempt:
		// redlock.ErrHeld, redlock.ErrNoQuorum, ...
		log.Printf("could not lock orders:42: %v", err)
		return
	}
	defer func() {
		// A release error means the section may not have been exclusive
		// to its end (the validity ran out, or nodes failed).
		if err := lock.Release(context.Background()); err != nil {
			log.Printf("release: %v", err)
		}
	}()

	// The critical section: act only while the lock is valid.
	if lock.TTL() > 0 {
		fmt.Println("decrement the stock of order 42")
	}
}

// TryObtain makes one attempt and says why it failed.
func ExampleLocker_TryObtain() {
	var nodes []pool.Pool
	for _, url := range []string{"redis://127.0.0.1:6379", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"} {
		p, err := pool.Dial(url)
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		nodes = append(nodes, p)
	}
	lk, err := redlock.New(nodes)
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()

	ctx := context.Background()
	lock, err := lk.TryObtain(ctx, "nightly-report", time.Minute)
	var qe *redlock.QuorumError
	switch {
	case err == nil:
		defer lock.Release(ctx)
		fmt.Println("this worker runs the report")
	case errors.Is(err, redlock.ErrHeld):
		if errors.As(err, &qe) {
			if left, ok := qe.HolderTTL(); ok {
				fmt.Println("another worker runs it; free again in at most", left)
			}
		}
	case errors.Is(err, redlock.ErrNoQuorum):
		// The message lists every node's answer.
		log.Printf("not enough Redis nodes reachable: %v", err)
	default:
		log.Printf("lock failed: %v", err)
	}
}

// Extend keeps a lock for a long task: each extension gives a fresh TTL,
// counted from when the extension started. Stop working when it fails.
func ExampleLock_Extend() {
	var nodes []pool.Pool
	for _, url := range []string{"redis://127.0.0.1:6379", "redis://127.0.0.1:6380", "redis://127.0.0.1:6381"} {
		p, err := pool.Dial(url)
		if err != nil {
			log.Fatal(err)
		}
		defer p.Close()
		nodes = append(nodes, p)
	}
	lk, err := redlock.New(nodes)
	if err != nil {
		log.Fatal(err)
	}
	defer lk.Close()

	ctx := context.Background()
	const ttl = 5 * time.Second
	lock, err := lk.Obtain(ctx, "import:batch-7", ttl)
	if err != nil {
		log.Printf("lock: %v", err)
		return
	}
	defer lock.Release(ctx)

	for chunk := 0; chunk < 10; chunk++ {
		// ... process one chunk, well within the remaining validity ...
		if lock.TTL() < ttl/2 {
			if err := lock.Extend(ctx, ttl); err != nil {
				// ErrNotHeld: the lock expired or was taken; ErrNoQuorum:
				// nodes failed. Either way, stop: it is no longer ours.
				log.Printf("lost the lock after chunk %d: %v", chunk, err)
				return
			}
		}
	}
}
