package sim

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

var _ pool.Subscriber = (*link)(nil)

// Subscribe opens a Pub/Sub connection to the node over the link, so that
// the coordinator's release notices travel the simulated network too: the
// connection is refused while the node is down and dropped when it crashes,
// and every event arrives after a delay of its own, in order.
func (l *link) Subscribe(ctx context.Context) (pool.Subscription, error) {
	conn := int(l.conns.Add(1))
	g := newRNG(l.w.seed, streamSub, l.client, l.nodeIndex<<10|conn&0x3ff)
	if err := l.w.sleep(ctx, g.dur(l.w.sc.Network.Delay)); err != nil {
		return nil, err
	}
	inner, err := l.node.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	return &subscription{w: l.w, inner: inner, rng: g, closed: make(chan struct{})}, nil
}

// subscription is a node's Pub/Sub connection seen through the network.
// Commands reach the node at once; what it sends back is delayed.
type subscription struct {
	w      *world
	inner  pool.Subscription
	rng    *rng
	closed chan struct{}
	once   sync.Once
}

func (s *subscription) Subscribe(channels ...string) error   { return s.inner.Subscribe(channels...) }
func (s *subscription) Unsubscribe(channels ...string) error { return s.inner.Unsubscribe(channels...) }
func (s *subscription) Ping() error                          { return s.inner.Ping() }

// Receive returns the node's next event once its delay has passed.
func (s *subscription) Receive(timeout time.Duration) (pool.Event, error) {
	ev, err := s.inner.Receive(timeout)
	if err != nil {
		return ev, err
	}
	t := s.w.clock.NewTimer(s.rng.dur(s.w.sc.Network.Delay))
	defer t.Stop()
	select {
	case <-t.C():
		return ev, nil
	case <-s.closed:
		return pool.Event{}, errSubClosed
	case <-s.w.done:
		return pool.Event{}, errShutdown
	}
}

// Close closes the connection and unblocks Receive.
func (s *subscription) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.inner.Close()
}

// errSubClosed is what Receive returns on a closed subscription.
var errSubClosed = errors.New("sim: subscription closed")
