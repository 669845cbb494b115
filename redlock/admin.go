package redlock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// Administration: looking at a lock on every node, and deleting locks by
// force. These calls take no part in the locking protocol: they ask every
// node in parallel and report each node's answer, without counting a quorum
// or retrying.

// resetScanCount is the COUNT hint of each SCAN step of ResetAll, and so
// roughly how many keys each delete call carries.
const resetScanCount = 500

// NodeState is one node's copy of a lock, as Inspect read it.
type NodeState struct {
	// Addr is the node's host:port.
	Addr string
	// Held is true when the node holds the lock's key.
	Held bool
	// Token is the holder's token (see Lock.Token) when Held.
	Token string
	// TTL is the key's remaining time to live on the node when Held;
	// negative when the key has no expiry, which no lock of this package
	// leaves.
	TTL time.Duration
	// Latency is how long the node took to answer.
	Latency time.Duration
	// Err is the node's error, if it did not answer. A key that holds
	// something other than a string is reported as an error matching
	// ErrWrongType: it is not a lock of this package.
	Err error
}

// Inspection is what every node held for one lock when Inspect asked. The
// nodes were read at slightly different moments and the answer may be stale
// by the time it is read: it is for people and monitoring, never a reason
// to act on the protected resource.
type Inspection struct {
	// Name is the lock's name and Key its Redis key.
	Name, Key string
	// Quorum is how many nodes must hold the same token for the lock to be
	// held.
	Quorum int
	// Nodes has one entry per node, in the Locker's order.
	Nodes []NodeState
}

// Holder returns the token held on the most nodes, and on how many; "" and 0
// when no node holds the lock.
func (in Inspection) Holder() (token string, nodes int) {
	counts := make(map[string]int, len(in.Nodes))
	for _, n := range in.Nodes {
		if n.Held && n.Err == nil {
			counts[n.Token]++
			if c := counts[n.Token]; c > nodes || c == nodes && n.Token < token {
				token, nodes = n.Token, c
			}
		}
	}
	return token, nodes
}

// Held reports whether one token is held on a quorum of nodes.
func (in Inspection) Held() bool {
	_, n := in.Holder()
	return n >= in.Quorum
}

// Settled reports whether the answers settle the question of Held: either a
// quorum holds one token, or too few nodes failed to answer for any token to
// be held on a quorum.
func (in Inspection) Settled() bool {
	_, n := in.Holder()
	failed := 0
	for _, s := range in.Nodes {
		if s.Err != nil {
			failed++
		}
	}
	return n >= in.Quorum || n+failed < in.Quorum
}

// HolderTTL returns how long the holder's key lives on at least a quorum of
// its nodes: the time after which, unless it is extended, the lock will be
// free. ok is false when the lock is not held on a quorum or a quorum of its
// keys has no expiry.
func (in Inspection) HolderTTL() (ttl time.Duration, ok bool) {
	token, n := in.Holder()
	if n < in.Quorum {
		return 0, false
	}
	var ttls []time.Duration
	for _, s := range in.Nodes {
		if s.Held && s.Err == nil && s.Token == token && s.TTL >= 0 {
			ttls = append(ttls, s.TTL)
		}
	}
	if len(ttls) < in.Quorum {
		return 0, false
	}
	// The quorum-th longest: until then, at least a quorum still holds it.
	slices.Sort(ttls)
	return ttls[len(ttls)-in.Quorum], true
}

// Inspect reads the lock called name on every node, in parallel, each call
// bounded by ctx (and by WithNodeTimeout, when set). It changes nothing.
// With no node timeout, give ctx a deadline: a hung node holds the call until
// ctx ends.
//
// Per-node failures are in the Inspection. The error is ErrInvalid for an
// empty name, ErrClosed after Close, and otherwise, when ctx ended before
// every node answered, ctx's error; the Inspection is returned with it.
func (lk *Locker) Inspect(ctx context.Context, name string) (Inspection, error) {
	if err := checkName(name); err != nil {
		return Inspection{}, err
	}
	key := lk.key(name)
	in := Inspection{Name: name, Key: key, Quorum: lk.quorum, Nodes: make([]NodeState, len(lk.nodes))}
	err := lk.eachNode(ctx, func(ctx context.Context, i int, p pool.Pool) {
		s := &in.Nodes[i]
		s.Addr = p.Addr()
		start := lk.cfg.clock.Now()
		reply, err := lk.adminEval(ctx, p, scripts.Inspect, []string{key})
		s.Latency = lk.cfg.clock.Since(start)
		if err != nil {
			s.Err = err
			return
		}
		r, err := scripts.DecodeInspect(reply)
		switch {
		case err != nil:
			s.Err = err
		case r.Exists && r.Type != "string":
			s.Err = fmt.Errorf("key %s holds a %s: %w", key, r.Type, ErrWrongType)
		case r.Exists:
			s.Held, s.Token, s.TTL = true, r.Value, time.Duration(r.PTTLms)*time.Millisecond
		}
	})
	if err != nil {
		return Inspection{}, fmt.Errorf("redlock: inspect %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return in, fmt.Errorf("redlock: inspect %q: %w", name, err)
	}
	return in, nil
}

// NodeReset is what a reset did on one node.
type NodeReset struct {
	// Addr is the node's host:port.
	Addr string
	// Deleted is how many keys the node deleted.
	Deleted int64
	// Latency is how long the node took, all its calls included.
	Latency time.Duration
	// Err is the node's error; the node may then still hold keys that
	// should have been deleted (Deleted counts those that were).
	Err error
}

// ResetReport is what a reset did on every node, in the Locker's order.
type ResetReport struct {
	Nodes []NodeReset
}

// Deleted returns how many keys were deleted on all nodes together.
func (r ResetReport) Deleted() int64 {
	var n int64
	for _, s := range r.Nodes {
		n += s.Deleted
	}
	return n
}

// Reset deletes the lock called name on every node, whoever holds it.
//
// Reset breaks mutual exclusion: a current holder is not told, goes on
// believing it holds the lock until its Extend, Release or renewal fails,
// and meanwhile another owner can obtain it. Use it only to clear a lock
// whose holder is known to be gone (for example a lock left without expiry
// by another tool), never as a way to take a lock over.
//
// Every node is asked in parallel, each call bounded by ctx (and by
// WithNodeTimeout, when set). The report says how many keys each node
// deleted. The error is ErrInvalid for an empty name, ErrClosed after Close,
// and otherwise, when any node failed, an error joining each failed node's
// error (matching ctx's error when ctx ended): the lock may then still exist
// on those nodes.
func (lk *Locker) Reset(ctx context.Context, name string) (ResetReport, error) {
	if err := checkName(name); err != nil {
		return ResetReport{}, err
	}
	key := lk.key(name)
	return lk.reset(ctx, fmt.Sprintf("reset %q", name), func(ctx context.Context, p pool.Pool) (int64, error) {
		return lk.deleteKeys(ctx, p, []string{key})
	})
}

// ResetAll deletes every key under the Locker's key prefix (see
// WithKeyPrefix) on every node: every lock of every name, whoever holds it.
//
// ResetAll breaks mutual exclusion for every current holder, as Reset does
// for one; and any other data stored under the prefix is deleted too. It is
// meant for clearing a test environment or recovering from an incident with
// every client stopped.
//
// Each node is scanned incrementally (SCAN with MATCH and COUNT, never KEYS,
// so the node keeps serving other clients) and the keys found are deleted in
// batches, nodes in parallel, each call bounded by ctx (and by
// WithNodeTimeout, when set). Keys created during the scan may survive it.
// The report and the error are those of Reset.
func (lk *Locker) ResetAll(ctx context.Context) (ResetReport, error) {
	pattern := globEscape(lk.cfg.prefix) + "*"
	return lk.reset(ctx, fmt.Sprintf("reset all under %q", lk.cfg.prefix), func(ctx context.Context, p pool.Pool) (int64, error) {
		var deleted int64
		cursor := "0"
		for {
			reply, err := lk.adminEval(ctx, p, scripts.Scan, nil, cursor, pattern, strconv.Itoa(resetScanCount))
			if err != nil {
				return deleted, err
			}
			r, err := scripts.DecodeScan(reply)
			if err != nil {
				return deleted, err
			}
			if len(r.Keys) > 0 {
				n, err := lk.deleteKeys(ctx, p, r.Keys)
				deleted += n
				if err != nil {
					return deleted, err
				}
			}
			if r.Cursor == "0" {
				return deleted, nil
			}
			cursor = r.Cursor
		}
	})
}

// reset runs del on every node and reports what each deleted.
func (lk *Locker) reset(ctx context.Context, op string, del func(ctx context.Context, p pool.Pool) (int64, error)) (ResetReport, error) {
	rep := ResetReport{Nodes: make([]NodeReset, len(lk.nodes))}
	err := lk.eachNode(ctx, func(ctx context.Context, i int, p pool.Pool) {
		s := &rep.Nodes[i]
		s.Addr = p.Addr()
		start := lk.cfg.clock.Now()
		s.Deleted, s.Err = del(ctx, p)
		s.Latency = lk.cfg.clock.Since(start)
	})
	if err != nil {
		return ResetReport{}, fmt.Errorf("redlock: %s: %w", op, err)
	}
	var errs []error
	for _, s := range rep.Nodes {
		if s.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Addr, s.Err))
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("redlock: %s: %d of %d nodes failed: %w", op, len(errs), len(rep.Nodes), errors.Join(errs...))
	}
	return rep, nil
}

// deleteKeys deletes keys on one node with the Delete script.
func (lk *Locker) deleteKeys(ctx context.Context, p pool.Pool, keys []string) (int64, error) {
	reply, err := lk.adminEval(ctx, p, scripts.Delete, keys)
	if err != nil {
		return 0, err
	}
	return scripts.Int(reply)
}

// eachNode runs op on every node in parallel, each with ctx, and waits for
// all of them. The goroutines are tracked like a round's, so that Close
// waits for them; after Close it fails with ErrClosed.
func (lk *Locker) eachNode(ctx context.Context, op func(ctx context.Context, i int, p pool.Pool)) error {
	var wg sync.WaitGroup
	lk.mu.RLock()
	if lk.closed {
		lk.mu.RUnlock()
		return ErrClosed
	}
	for i, p := range lk.nodes {
		wg.Add(1)
		lk.bg.Go(func() error {
			defer wg.Done()
			op(ctx, i, p)
			return nil
		})
	}
	lk.mu.RUnlock()
	wg.Wait()
	return nil
}

// adminEval runs one administration script on p, bounded by ctx and, when
// one was set with WithNodeTimeout, by the node timeout.
func (lk *Locker) adminEval(ctx context.Context, p pool.Pool, s *pool.Script, keys []string, args ...any) (any, error) {
	d := lk.cfg.nodeTimeout
	if d <= 0 {
		return p.Eval(ctx, s, keys, args...)
	}
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := lk.cfg.clock.AfterFunc(d, cancel)
	defer t.Stop()
	reply, err := p.Eval(nctx, s, keys, args...)
	if err != nil && ctx.Err() == nil && nctx.Err() != nil {
		err = errNodeTimeout{timeout: d}
	}
	return reply, err
}

// globEscape quotes the characters that SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
