package pooltest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// publish sends a message on channel through the pool itself, as the release
// script does.
var publish = &pool.Script{Name: "pooltest-publish", Src: `return redis.call('PUBLISH', KEYS[1], ARGV[1])`}

// subscriber returns p as a pool.Subscriber, skipping t when p is not one.
func subscriber(t *testing.T, p pool.Pool) pool.Subscriber {
	t.Helper()
	sub, ok := p.(pool.Subscriber)
	if !ok {
		t.Skipf("%T does not implement pool.Subscriber", p)
	}
	return sub
}

// subscribe opens a subscription bounded by timeout.
func subscribe(t *testing.T, sub pool.Subscriber, timeout time.Duration) (pool.Subscription, error) {
	t.Helper()
	type opened struct {
		s   pool.Subscription
		err error
	}
	o := within(t, "Subscribe", func() opened {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		s, err := sub.Subscribe(ctx)
		return opened{s, err}
	})
	return o.s, o.err
}

// expect receives the next event and checks it.
func expect(t *testing.T, s pool.Subscription, want pool.Event) {
	t.Helper()
	ev, err := s.Receive(hangBound)
	if err != nil {
		t.Fatalf("Receive: %v, want %+v", err, want)
	}
	if ev != want {
		t.Fatalf("Receive: %+v, want %+v", ev, want)
	}
}

func testPubSub(t *testing.T, f Factory) {
	srv := server(t)
	p := open(t, f, srv.URL(), nil)
	sub := subscriber(t, p)
	ctx := t.Context()
	s, err := subscribe(t, sub, hangBound)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer s.Close()

	if err := s.Subscribe("pooltest:a", "pooltest:b"); err != nil {
		t.Fatal(err)
	}
	expect(t, s, pool.Event{Kind: pool.EventSubscribed, Channel: "pooltest:a"})
	expect(t, s, pool.Event{Kind: pool.EventSubscribed, Channel: "pooltest:b"})

	// A message published on each channel arrives, in order.
	for _, ch := range []string{"pooltest:b", "pooltest:a"} {
		n, err := p.Eval(ctx, publish, []string{ch}, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := scripts.Int(n); err != nil || got != 1 {
			t.Fatalf("PUBLISH %s reached %v subscribers (%v), want 1", ch, n, err)
		}
	}
	expect(t, s, pool.Event{Kind: pool.EventMessage, Channel: "pooltest:b"})
	expect(t, s, pool.Event{Kind: pool.EventMessage, Channel: "pooltest:a"})

	// The release script's notice is such a message.
	lock := []string{"pooltest:a", "pooltest:boot"}
	if _, err := p.Eval(ctx, scripts.Acquire, lock, "holder-token", "60000"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Eval(ctx, scripts.Release, lock[:1], "holder-token"); err != nil {
		t.Fatal(err)
	}
	expect(t, s, pool.Event{Kind: pool.EventMessage, Channel: "pooltest:a"})

	if err := s.Ping(); err != nil {
		t.Fatal(err)
	}
	expect(t, s, pool.Event{Kind: pool.EventPong})

	// After Unsubscribe, nothing more arrives from that channel: the
	// next event is the message on the other one.
	if err := s.Unsubscribe("pooltest:a"); err != nil {
		t.Fatal(err)
	}
	expect(t, s, pool.Event{Kind: pool.EventUnsubscribed, Channel: "pooltest:a"})
	for _, ch := range []string{"pooltest:a", "pooltest:b"} {
		if _, err := p.Eval(ctx, publish, []string{ch}, ""); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, s, pool.Event{Kind: pool.EventMessage, Channel: "pooltest:b"})

	// Receive with a timeout and nothing to receive returns (with an
	// error: the connection is then closed by its user).
	var ev pool.Event
	err = within(t, "Receive with a timeout", func() error {
		var err error
		ev, err = s.Receive(50 * time.Millisecond)
		return err
	})
	if err == nil {
		t.Errorf("Receive with nothing to receive returned %+v, want an error after the timeout", ev)
	}
}

// testPubSubCloseUnblocksReceive closes a subscription while Receive waits
// without a timeout on a node that hangs: Receive must return.
func testPubSubCloseUnblocksReceive(t *testing.T, f Factory) {
	srv := server(t)
	p := open(t, f, srv.URL(), nil)
	s, err := subscribe(t, subscriber(t, p), hangBound)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := s.Subscribe("pooltest:c"); err != nil {
		t.Fatal(err)
	}
	expect(t, s, pool.Event{Kind: pool.EventSubscribed, Channel: "pooltest:c"})
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Resume() })
	received := make(chan error, 1)
	go func() {
		_, err := s.Receive(0)
		received <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Receive block (or not: either way it must return)
	within(t, "Close", func() error { return s.Close() })
	select {
	case err := <-received:
		if err == nil {
			t.Error("Receive on a closed subscription returned no error")
		}
	case <-time.After(hangBound):
		t.Fatalf("Receive still blocked %v after Close", hangBound)
	}
}

// testPubSubFaults: Subscribe on a killed node fails; on a hung node it
// returns by its context's deadline; a subscription whose node dies reports
// an error from Receive.
func testPubSubFaults(t *testing.T, f Factory) {
	t.Run("node killed while subscribed", func(t *testing.T) {
		srv := server(t)
		p := open(t, f, srv.URL(), nil)
		s, err := subscribe(t, subscriber(t, p), hangBound)
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		defer s.Close()
		if err := s.Subscribe("pooltest:d"); err != nil {
			t.Fatal(err)
		}
		expect(t, s, pool.Event{Kind: pool.EventSubscribed, Channel: "pooltest:d"})
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		err = within(t, "Receive on a killed node", func() error {
			_, err := s.Receive(hangBound)
			return err
		})
		if err == nil {
			t.Error("Receive on a killed node: no error")
		}
	})
	t.Run("killed node", func(t *testing.T) {
		srv := server(t)
		p := open(t, f, srv.URL(), nil)
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		s, err := subscribe(t, subscriber(t, p), hangBound)
		if err == nil {
			// An adapter may connect lazily; the subscription must fail
			// at its first use then.
			defer s.Close()
			err = s.Subscribe("pooltest:e")
			if err == nil {
				_, err = s.Receive(hangBound)
			}
		}
		if err == nil {
			t.Error("subscribing on a killed node: no error")
		}
		if isContextError(err) {
			t.Errorf("subscribing on a killed node ran into its deadline: %v", err)
		}
	})
	t.Run("hung node", func(t *testing.T) {
		srv := server(t)
		p := open(t, f, srv.URL(), nil)
		if err := srv.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = srv.Resume() })
		// Whether the adapter waits for the node (and must then stop at
		// the deadline) or not, Subscribe returns.
		s, err := subscribe(t, subscriber(t, p), 100*time.Millisecond)
		if err == nil {
			_ = s.Close()
		}
	})
}

// testPubSubConcurrent calls Subscribe, Ping and Unsubscribe from one
// goroutine while another receives, as the interface allows (run it with
// -race): every confirmation and pong arrives.
func testPubSubConcurrent(t *testing.T, f Factory) {
	srv := server(t)
	p := open(t, f, srv.URL(), nil)
	s, err := subscribe(t, subscriber(t, p), hangBound)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer s.Close()
	const n = 50
	type counts struct{ subscribed, unsubscribed, pongs int }
	result := make(chan counts, 1)
	go func() {
		var c counts
		for c.subscribed < n || c.unsubscribed < n || c.pongs < n {
			ev, err := s.Receive(hangBound)
			if err != nil {
				break
			}
			switch ev.Kind {
			case pool.EventSubscribed:
				c.subscribed++
			case pool.EventUnsubscribed:
				c.unsubscribed++
			case pool.EventPong:
				c.pongs++
			}
		}
		result <- c
	}()
	for i := range n {
		ch := "pooltest:concurrent:" + strconv.Itoa(i)
		if err := s.Subscribe(ch); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(); err != nil {
			t.Fatal(err)
		}
		if err := s.Unsubscribe(ch); err != nil {
			t.Fatal(err)
		}
	}
	c := within(t, "receiving", func() counts { return <-result })
	if c != (counts{n, n, n}) {
		t.Errorf("received %d subscriptions, %d unsubscriptions, %d pongs; want %d of each", c.subscribed, c.unsubscribed, c.pongs, n)
	}
}
