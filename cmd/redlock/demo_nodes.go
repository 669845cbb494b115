package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/quorumlock/quorumlock/internal/embedded"
	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
)

// demoNodes are the demo's nodes: redis-server processes it started itself,
// or nodes it was given, which it must not stop.
type demoNodes struct {
	dialed   nodes
	pools    []*cuttable
	servers  []*redistest.Server // nil when the nodes were given
	embedded []*embedded.Node    // in-process nodes, when redis-server is missing
	dirs     []string
}

// startEmbeddedNodes starts n in-process nodes, for a machine without
// redis-server.
func startEmbeddedNodes(n int) (*demoNodes, error) {
	ns, err := embedded.Start(n)
	if err != nil {
		return nil, err
	}
	dn := &demoNodes{embedded: ns}
	urls := make([]string, len(ns))
	for i, node := range ns {
		urls[i] = node.URL()
	}
	if err := dn.dial(urls); err != nil {
		dn.close()
		return nil, err
	}
	return dn, nil
}

// startDemoNodes starts n redis-server processes, each in its own temporary
// directory. On error, whatever was started is already stopped.
func startDemoNodes(ctx context.Context, n int) (*demoNodes, error) {
	dn := &demoNodes{}
	urls := make([]string, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			dn.close()
			return nil, err
		}
		dir, err := os.MkdirTemp("", "redlock-demo-")
		if err != nil {
			dn.close()
			return nil, err
		}
		dn.dirs = append(dn.dirs, dir)
		s, err := redistest.StartServer(dir)
		if err != nil {
			dn.close()
			if errors.Is(err, redistest.ErrNoBinary) {
				return nil, fmt.Errorf("%w; or pass --nodes to use running nodes", err)
			}
			return nil, err
		}
		dn.servers = append(dn.servers, s)
		urls = append(urls, s.URL())
	}
	if err := dn.dial(urls); err != nil {
		dn.close()
		return nil, err
	}
	return dn, nil
}

// givenDemoNodes dials nodes the demo does not own.
func givenDemoNodes(urls []string) (*demoNodes, error) {
	dn := &demoNodes{}
	if err := dn.dial(urls); err != nil {
		return nil, err
	}
	return dn, nil
}

func (dn *demoNodes) dial(urls []string) error {
	ns, err := dial(urls)
	if err != nil {
		return err
	}
	dn.dialed = ns
	for _, p := range ns {
		dn.pools = append(dn.pools, &cuttable{Pool: p})
	}
	return nil
}

// local reports whether the demo started the nodes itself (and may kill them).
func (dn *demoNodes) local() bool { return dn.servers != nil || dn.embedded != nil }

// lockPools returns the pools the demo's Locker uses.
func (dn *demoNodes) lockPools() []pool.Pool {
	ps := make([]pool.Pool, len(dn.pools))
	for i, p := range dn.pools {
		ps[i] = p
	}
	return ps
}

// fail takes node i down: its process is killed when the demo started it;
// a given node is cut off from this process instead, since it is not ours
// to kill.
func (dn *demoNodes) fail(i int) error {
	switch {
	case dn.embedded != nil:
		return dn.embedded[i].Kill()
	case dn.servers != nil:
		return dn.servers[i].Kill()
	}
	dn.pools[i].cut.Store(true)
	return nil
}

// close kills the servers the demo started and removes their directories.
func (dn *demoNodes) close() {
	dn.dialed.close()
	for _, s := range dn.servers {
		_ = s.Kill()
	}
	for _, n := range dn.embedded {
		_ = n.Close()
	}
	for _, d := range dn.dirs {
		_ = os.RemoveAll(d)
	}
}

// errCut is what a cut-off node answers.
var errCut = errors.New("node cut off by the demo")

// cuttable is a pool that can be made to fail every call, as if its node
// were down, without touching the node.
type cuttable struct {
	pool.Pool
	cut atomic.Bool
}

func (c *cuttable) Eval(ctx context.Context, s *pool.Script, keys []string, args ...any) (any, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Pool.Eval(ctx, s, keys, args...)
}

// Subscribe lets the Locker hear release notices through a cuttable pool
// as it would through the pool itself.
func (c *cuttable) Subscribe(ctx context.Context) (pool.Subscription, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	s, ok := c.Pool.(pool.Subscriber)
	if !ok {
		return nil, errors.New("node cannot subscribe")
	}
	return s.Subscribe(ctx)
}
