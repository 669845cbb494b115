package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// DefaultNodes is the size of a cluster when Config.Nodes is zero.
const DefaultNodes = 5

// Config describes a cluster.
type Config struct {
	// Nodes is how many independent Redis masters to start (default 5).
	Nodes int
	// Persistence is what every node writes to disk (default none).
	Persistence Persistence
}

// Cluster is a set of independent Redis containers, each behind its own
// Proxy, for the lock's quorum. Close removes every container, whatever
// state the faults left it in.
type Cluster struct {
	d     *Docker
	nodes []*Node
}

// StartCluster starts the nodes in parallel and returns once every one
// answers PING. On error, the nodes already started are removed.
func (d *Docker) StartCluster(ctx context.Context, cfg Config) (*Cluster, error) {
	n := cfg.Nodes
	if n == 0 {
		n = DefaultNodes
	}
	if n < 0 {
		return nil, fmt.Errorf("integration: %d nodes", n)
	}
	c := &Cluster{d: d, nodes: make([]*Node, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.nodes[i], errs[i] = d.startNode(ctx, i, cfg.Persistence)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, c.Close(context.WithoutCancel(ctx)))
	}
	return c, nil
}

// Nodes returns the cluster's nodes in order.
func (c *Cluster) Nodes() []*Node { return append([]*Node(nil), c.nodes...) }

// Node returns node i.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Len returns the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Pools dials one pool per node (through the proxies), as a separate process
// would: no connection is shared with another client. The caller closes them.
func (c *Cluster) Pools(opts ...pool.DialOption) ([]*pool.Redigo, error) {
	pools := make([]*pool.Redigo, 0, len(c.nodes))
	for _, n := range c.nodes {
		p, err := pool.Dial(n.URL(), opts...)
		if err != nil {
			for _, q := range pools {
				_ = q.Close()
			}
			return nil, err
		}
		pools = append(pools, p)
	}
	return pools, nil
}

// Client is one contender: a Locker over pools of its own.
type Client struct {
	*redlock.Locker
	pools []*pool.Redigo
}

// NewClient returns a Client over every node of the cluster.
func (c *Cluster) NewClient(opts ...redlock.Option) (*Client, error) {
	pools, err := c.Pools()
	if err != nil {
		return nil, err
	}
	nodes := make([]pool.Pool, len(pools))
	for i, p := range pools {
		nodes[i] = p
	}
	lk, err := redlock.New(nodes, opts...)
	if err != nil {
		for _, p := range pools {
			_ = p.Close()
		}
		return nil, err
	}
	return &Client{Locker: lk, pools: pools}, nil
}

// Close closes the Locker (waiting for its background calls) and then its
// pools.
func (cl *Client) Close() error {
	err := cl.Locker.Close()
	for _, p := range cl.pools {
		err = errors.Join(err, p.Close())
	}
	return err
}

// Close removes every node's container and closes its proxy.
func (c *Cluster) Close(ctx context.Context) error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.close(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
