package goredis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/pool"
)

// Subscribe opens a dedicated Pub/Sub connection (go-redis's PubSub, which
// does not take a connection from the client's pool) and proves it alive with
// a PING before returning, so that an unreachable or refusing node is
// reported here rather than by the first Receive. Connecting is bounded by
// ctx; when ctx ends first, Subscribe returns ctx's error and the half-open
// connection is closed in the background.
func (p *Pool) Subscribe(ctx context.Context) (pool.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Without channels, go-redis creates the PubSub without connecting.
	ps := p.c.Subscribe(context.Background())
	opened := make(chan error, 1)
	go func() {
		err := ps.Ping(ctx)
		if err == nil {
			var v any
			v, err = ps.ReceiveTimeout(ctx, 0)
			if _, ok := v.(*redis.Pong); err == nil && !ok {
				err = fmt.Errorf("goredis: unexpected answer %T to PING on a new Pub/Sub connection", v)
			}
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			_ = ps.Close()
			return nil, p.mapError(ctx, err)
		}
		return &subscription{p: p, ps: ps}, nil
	case <-ctx.Done():
		// Close waits for the PubSub's lock, which a dial in progress
		// holds; closing the connection unblocks a read in progress.
		go func() { _ = ps.Close() }()
		return nil, ctx.Err()
	}
}

// subscription is a pool.Subscription over a go-redis PubSub. go-redis
// serialises Subscribe, Unsubscribe, Ping and Close with a lock that
// ReceiveTimeout does not hold while it waits, so one goroutine may receive
// while others send.
type subscription struct {
	p  *Pool
	ps *redis.PubSub
}

func (s *subscription) Subscribe(channels ...string) error {
	if len(channels) == 0 {
		return nil
	}
	return s.err(s.ps.Subscribe(context.Background(), channels...))
}

func (s *subscription) Unsubscribe(channels ...string) error {
	return s.err(s.ps.Unsubscribe(context.Background(), channels...))
}

func (s *subscription) Ping() error { return s.err(s.ps.Ping(context.Background())) }

// Close closes the connection, which ends a Receive in progress with an
// error. Closing twice is not an error.
func (s *subscription) Close() error {
	if err := s.ps.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return err
	}
	return nil
}

// Receive waits up to timeout (0: no limit) for the next subscription
// change, message or pong, skipping anything else (pattern subscriptions are
// never made).
func (s *subscription) Receive(timeout time.Duration) (pool.Event, error) {
	for {
		v, err := s.ps.ReceiveTimeout(context.Background(), timeout)
		if err != nil {
			return pool.Event{}, s.err(err)
		}
		switch m := v.(type) {
		case *redis.Message:
			return pool.Event{Kind: pool.EventMessage, Channel: m.Channel, Data: m.Payload}, nil
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe":
				return pool.Event{Kind: pool.EventSubscribed, Channel: m.Channel}, nil
			case "unsubscribe":
				return pool.Event{Kind: pool.EventUnsubscribed, Channel: m.Channel}, nil
			}
		case *redis.Pong:
			return pool.Event{Kind: pool.EventPong}, nil
		}
	}
}

func (s *subscription) err(err error) error {
	if err == nil {
		return nil
	}
	return s.p.mapError(context.Background(), err)
}
