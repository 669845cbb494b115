package pool

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Subscriber is implemented by Pools that can open a Pub/Sub connection to
// their node. The coordinator uses it to wake waiters as soon as a lock is
// released; with a Pool that does not implement it, waiters fall back to
// polling.
type Subscriber interface {
	// Subscribe opens a dedicated Pub/Sub connection, bounded by ctx while
	// connecting.
	Subscribe(ctx context.Context) (Subscription, error)
}

// Subscription is one Pub/Sub connection. Subscribe, Unsubscribe, Ping and
// Close are safe for concurrent use, also while one goroutine (and only one)
// is in Receive.
type Subscription interface {
	// Subscribe asks for the channels' messages; the confirmations arrive
	// through Receive as EventSubscribed.
	Subscribe(channels ...string) error
	// Unsubscribe stops the channels' messages.
	Unsubscribe(channels ...string) error
	// Ping asks the node for an EventPong, to prove the connection alive.
	Ping() error
	// Receive waits up to timeout (0: no limit) for the next event. Any
	// error means the connection is broken and must be closed.
	Receive(timeout time.Duration) (Event, error)
	// Close closes the connection and unblocks Receive.
	Close() error
}

// EventKind says what a Pub/Sub event is.
type EventKind int

// The kinds of Pub/Sub events.
const (
	EventMessage      EventKind = iota + 1 // a message published on Channel
	EventSubscribed                        // Channel's subscription is active
	EventUnsubscribed                      // Channel's subscription ended
	EventPong                              // the answer to Ping
)

// Event is one Pub/Sub event.
type Event struct {
	Kind    EventKind
	Channel string
	Data    string // a message's payload
}

// Subscribe opens a Pub/Sub connection with the redigo pool's dial function.
// The connection is not taken from the pool: closing it must unblock a
// Receive at once, even on a hung node.
func (p *Redigo) Subscribe(ctx context.Context) (Subscription, error) {
	var conn redis.Conn
	var err error
	switch {
	case p.rp.DialContext != nil:
		conn, err = p.rp.DialContext(ctx)
	case p.rp.Dial != nil:
		conn, err = p.rp.Dial()
	default:
		return nil, errors.New("pool: the redigo pool has no Dial function")
	}
	if err != nil {
		return nil, err
	}
	return &redigoSub{psc: redis.PubSubConn{Conn: conn}}, nil
}

type redigoSub struct {
	psc redis.PubSubConn
	mu  sync.Mutex // redigo allows one writer at a time
}

func (s *redigoSub) Subscribe(channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.psc.Subscribe(redis.Args{}.AddFlat(channels)...)
}

func (s *redigoSub) Unsubscribe(channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.psc.Unsubscribe(redis.Args{}.AddFlat(channels)...)
}

func (s *redigoSub) Ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.psc.Ping("")
}

func (s *redigoSub) Close() error { return s.psc.Close() }

func (s *redigoSub) Receive(timeout time.Duration) (Event, error) {
	for {
		switch v := s.psc.ReceiveWithTimeout(timeout).(type) {
		case redis.Message:
			return Event{Kind: EventMessage, Channel: v.Channel, Data: string(v.Data)}, nil
		case redis.Subscription:
			switch v.Kind {
			case "subscribe":
				return Event{Kind: EventSubscribed, Channel: v.Channel}, nil
			case "unsubscribe":
				return Event{Kind: EventUnsubscribed, Channel: v.Channel}, nil
			}
		case redis.Pong:
			return Event{Kind: EventPong}, nil
		case error:
			var re redis.Error
			if errors.As(v, &re) {
				return Event{}, &ServerError{Msg: string(re)}
			}
			return Event{}, v
		}
	}
}
