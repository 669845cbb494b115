package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// interrupts is a context that ends at the first SIGINT or SIGTERM, and
// remembers which one it was so that the exit status can say (128+N).
type interrupts struct {
	context.Context
	stop func()

	mu  sync.Mutex
	sig syscall.Signal
}

func onInterrupt() *interrupts {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	in := &interrupts{Context: ctx}
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			in.mu.Lock()
			in.sig = s.(syscall.Signal)
			in.mu.Unlock()
			cancel()
		case <-done:
		}
	}()
	in.stop = func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
	return in
}

// status returns the exit status of a process interrupted by the signal
// received: 128+N.
func (in *interrupts) status() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sig == 0 {
		return exitSignalBase + int(syscall.SIGINT)
	}
	return exitSignalBase + int(in.sig)
}
