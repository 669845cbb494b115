package sim

import (
	"context"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// link is one client's connection to one node: a pool.Pool whose messages
// are delayed and lost as the scenario's Network says.
//
// Every call draws its fate from a stream of the link kept for its script.
// A coordinator can start two calls on one link at the same instant (the
// cleanup of a failed attempt and the next attempt), and which goroutine
// draws first is up to the Go scheduler; calls of one script are sequential,
// so with a stream per script each call's fate depends on the seed alone.
type link struct {
	w         *world
	node      *node
	client    int          // index of the client at this end
	nodeIndex int          // index of the node at the other end
	conns     atomic.Int64 // Pub/Sub connections opened, each with its own stream

	mu      sync.Mutex
	streams map[string]*rng // by script name
}

// stream returns the fate stream of one script on this link.
func (l *link) stream(script string) *rng {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.streams[script]
	if g == nil {
		h := fnv.New64a()
		h.Write([]byte(script))
		g = newRNG(l.w.seed^h.Sum64(), streamLink, l.client, l.nodeIndex)
		if l.streams == nil {
			l.streams = map[string]*rng{}
		}
		l.streams[script] = g
	}
	return g
}

var _ pool.Pool = (*link)(nil)

// Addr returns the node's address.
func (l *link) Addr() string { return l.node.addr }

// Eval sends the request, lets the node apply it when it arrives, and
// delivers the reply after its own delay. A request still on the wire when
// the caller gives up is applied all the same when it lands, as a real
// server would: the coordinator must cope with a node that acts after it
// stopped waiting.
func (l *link) Eval(ctx context.Context, s *pool.Script, keys []string, args ...any) (any, error) {
	return l.send(ctx, s.Name, func() (any, error) { return l.node.apply(s, keys, args) })
}

// send carries one request on the link, drawing its fate from stream, and
// applies it at the node when it lands.
func (l *link) send(ctx context.Context, stream string, apply func() (any, error)) (any, error) {
	w, net, g := l.w, l.w.sc.Network, l.stream(stream)
	out, back := delay(g, net), delay(g, net)
	lossReq, lossRep := false, false
	if g.chance(net.LossP) {
		if g.chance(0.5) {
			lossReq = true
		} else {
			lossRep = true
		}
	}
	w.stats.messages.Add(1)
	sent := w.clock.Now()
	if err := w.sleep(ctx, out); err != nil {
		if !lossReq && ctx.Err() != nil {
			w.stats.late.Add(1)
			w.clock.AfterFunc(sent.Add(out).Sub(w.clock.Now()), func() { _, _ = apply() })
		}
		return nil, err
	}
	if lossReq {
		w.stats.lost.Add(1)
		return nil, w.waitEnd(ctx)
	}
	val, err := apply()
	if lossRep {
		w.stats.lost.Add(1)
		return nil, w.waitEnd(ctx)
	}
	if e := w.sleep(ctx, back); e != nil {
		return nil, e
	}
	return val, err
}

var _ pool.Pipeliner = (*link)(nil)

// Pipeline is Eval for plain commands sent together (the coordinator's
// script-free acquire): the same delays and losses, drawn from a stream of
// their own, and applied at once when they land.
func (l *link) Pipeline(ctx context.Context, cmds []pool.Cmd) ([]any, error) {
	v, err := l.send(ctx, "pipeline", func() (any, error) { return l.node.commands(cmds) })
	if err != nil {
		return nil, err
	}
	return v.([]any), nil
}

// delay draws one message's one-way delay.
func delay(g *rng, net Network) time.Duration {
	if g.chance(net.SlowP) {
		return g.dur(net.Slow)
	}
	return g.dur(net.Delay)
}
