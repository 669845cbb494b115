package memnode

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

var _ pool.Subscriber = (*Node)(nil)

// errSubClosed is returned by Receive once the subscription is closed or the
// node dropped it.
var errSubClosed = errors.New("memnode: subscription closed")

// Subscribe opens an in-memory Pub/Sub connection. It fails like a call does
// while the node is failed or hung.
func (n *Node) Subscribe(ctx context.Context) (pool.Subscription, error) {
	n.mu.Lock()
	fail, hang := n.fail, n.hang
	n.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s := &sub{node: n, events: make(chan pool.Event, 256), closed: make(chan struct{}), channels: map[string]bool{}}
	n.mu.Lock()
	n.subs = append(n.subs, s)
	n.mu.Unlock()
	return s, nil
}

// DropSubscriptions closes every open subscription, as a restart would.
func (n *Node) DropSubscriptions() {
	n.mu.Lock()
	subs := n.subs
	n.subs = nil
	n.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

// publish delivers a message to the subscribers of channel; n.mu is held.
func (n *Node) publish(channel, data string) {
	for _, s := range n.subs {
		s.deliver(pool.Event{Kind: pool.EventMessage, Channel: channel, Data: data}, true)
	}
}

type sub struct {
	node   *Node
	events chan pool.Event
	closed chan struct{}

	mu       sync.Mutex
	channels map[string]bool
	done     bool
}

func (s *sub) deliver(ev pool.Event, onlySubscribed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || (onlySubscribed && !s.channels[ev.Channel]) {
		return
	}
	select {
	case s.events <- ev:
	default: // a slow subscriber loses messages, as with a real server's output buffer limit
	}
}

func (s *sub) Subscribe(channels ...string) error {
	for _, c := range channels {
		s.mu.Lock()
		s.channels[c] = true
		s.mu.Unlock()
		s.deliver(pool.Event{Kind: pool.EventSubscribed, Channel: c}, false)
	}
	return nil
}

func (s *sub) Unsubscribe(channels ...string) error {
	for _, c := range channels {
		s.mu.Lock()
		delete(s.channels, c)
		s.mu.Unlock()
		s.deliver(pool.Event{Kind: pool.EventUnsubscribed, Channel: c}, false)
	}
	return nil
}

func (s *sub) Ping() error {
	s.deliver(pool.Event{Kind: pool.EventPong}, false)
	return nil
}

func (s *sub) Receive(timeout time.Duration) (pool.Event, error) {
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case ev := <-s.events:
		return ev, nil
	case <-s.closed:
		return pool.Event{}, errSubClosed
	case <-tc:
		return pool.Event{}, errors.New("memnode: receive timeout")
	}
}

func (s *sub) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		close(s.closed)
	}
	return nil
}
