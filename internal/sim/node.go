package sim

import (
	"context"
	"errors"
	"sync"

	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/pool"
)

// errNodeDown is what a client gets from a crashed node: the connection is
// refused.
var errNodeDown = errors.New("sim: connection refused: node is down")

// node is one simulated Redis server: the in-memory store, the host's own
// clock by which it expires keys, and whether the process is up.
type node struct {
	addr  string
	clock *memnode.SkewClock
	mem   *memnode.Node

	mu sync.Mutex
	up bool
}

// apply runs a request that has reached the node. It is atomic: the node
// cannot crash half-way through a script.
func (n *node) apply(s *pool.Script, keys []string, args []any) (any, error) {
	n.mu.Lock()
	up := n.up
	n.mu.Unlock()
	if !up {
		return nil, errNodeDown
	}
	return n.mem.Eval(context.Background(), s, keys, args...)
}

// commands runs plain commands that reached the node, at once, as apply
// runs a script.
func (n *node) commands(cmds []pool.Cmd) ([]any, error) {
	n.mu.Lock()
	up := n.up
	n.mu.Unlock()
	if !up {
		return nil, errNodeDown
	}
	return n.mem.Commands(context.Background(), cmds)
}

// subscribe opens a Pub/Sub connection; it is refused while the node is
// down.
func (n *node) subscribe(ctx context.Context) (pool.Subscription, error) {
	n.mu.Lock()
	up := n.up
	n.mu.Unlock()
	if !up {
		return nil, errNodeDown
	}
	return n.mem.Subscribe(ctx)
}

// crash stops the node and drops its Pub/Sub connections. Without persistence its keys are gone; with it (AOF,
// fsync always) they are back on restart, each still expiring by the node's
// clock, as Redis stores absolute expiry times.
func (n *node) crash(keep bool) {
	n.mu.Lock()
	n.up = false
	n.mu.Unlock()
	n.mem.DropSubscriptions()
	if !keep {
		n.mem.Flush()
	}
}

// restart brings the node back.
func (n *node) restart() {
	n.mu.Lock()
	n.up = true
	n.mu.Unlock()
}
