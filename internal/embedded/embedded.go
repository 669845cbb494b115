// Package embedded runs Redis nodes inside the current process, for the demo
// on a machine without redis-server.
//
// A Node is a github.com/alicebob/miniredis/v2 server listening on a free
// 127.0.0.1 port. It speaks the Redis protocol, so the ordinary adapters
// (pool.Dial, goredis.Dial) reach it by its URL, and it runs the lock scripts
// (EVALSHA, SCRIPT LOAD, SET NX PX, PTTL, PUBLISH, TIME, Lua's redis.pcall and
// redis.error_reply). Keys expire by the wall clock, as on a real server.
//
// An embedded node is a stand-in, not a Redis: it keeps nothing on disk, runs
// in the same process as its clients (so a crash of the process takes every
// node with it, which independent masters are meant to rule out), and
// implements only a subset of Redis. Use real servers for anything but a
// demonstration or a test.
package embedded

import (
	"errors"
	"fmt"
	"sync"

	"github.com/alicebob/miniredis/v2"
)

// Node is one in-process Redis node. Its methods are safe for concurrent use.
type Node struct {
	m    *miniredis.Miniredis
	addr string

	mu     sync.Mutex
	killed bool
}

// Start starts n nodes, each on its own free 127.0.0.1 port. On error, the
// nodes already started are closed.
func Start(n int) ([]*Node, error) {
	if n <= 0 {
		return nil, fmt.Errorf("embedded: need at least one node, not %d", n)
	}
	nodes := make([]*Node, 0, n)
	for range n {
		node, err := start()
		if err != nil {
			for _, started := range nodes {
				_ = started.Close()
			}
			return nil, err
		}
		nodes = append(nodes, node)
	}
	return nodes, nil
}

func start() (*Node, error) {
	m := miniredis.NewMiniRedis()
	// Without ClockTTL, miniredis only expires keys when told to
	// (FastForward): a lock would never run out on its own.
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded: starting a node: %w", err)
	}
	return &Node{m: m, addr: m.Addr()}, nil
}

// Addr returns the node's host:port. It stays the same after Kill.
func (n *Node) Addr() string { return n.addr }

// URL returns the node's redis:// URL, for pool.Dial and goredis.Dial.
func (n *Node) URL() string { return "redis://" + n.addr }

// Running reports whether the node still accepts commands.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.killed
}

// ErrKilled is returned by Kill for a node that is already down.
var ErrKilled = errors.New("embedded: node already killed")

// Kill stops the node as a crash would: it stops accepting connections, drops
// the open ones (a command in flight gets a connection error) and loses its
// data. A killed node does not come back; its port may be reused by another
// process. Kill of a node already killed returns ErrKilled.
func (n *Node) Kill() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.killed {
		return ErrKilled
	}
	n.killed = true
	n.m.Close()
	return nil
}

// Close stops the node if it is running and releases it. It may be called
// after Kill and more than once; it always returns nil (the error is there so
// that a Node is an io.Closer).
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.killed {
		n.killed = true
		n.m.Close()
	}
	return nil
}
