package integration

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// The proxy is tested against a local echo server, without Docker, so that
// its faults are known to work before the suite relies on them. Only lower
// bounds on time are asserted (a delay is at least what was asked), never
// how fast something is.

func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

type echoConn struct {
	net.Conn
	r *bufio.Reader
}

func dialEcho(t *testing.T, addr string) *echoConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &echoConn{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads it back within wait.
func (c *echoConn) roundTrip(line string, wait time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	got, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

func TestProxyForwards(t *testing.T) {
	p := startProxy(t, startEcho(t))
	c := dialEcho(t, p.Addr())
	for _, line := range []string{"one", "two", "three"} {
		if got, err := c.roundTrip(line, 5*time.Second); err != nil || got != line {
			t.Fatalf("round trip %q = %q, %v", line, got, err)
		}
	}
}

func TestProxyCutRefusesUntilHealed(t *testing.T) {
	p := startProxy(t, startEcho(t))
	open := dialEcho(t, p.Addr())
	if _, err := open.roundTrip("before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	// The open connection is closed, and so is a new one: the error comes
	// at once, not at the deadline.
	for _, c := range []*echoConn{open, dialEcho(t, p.Addr())} {
		_, err := c.roundTrip("during", 5*time.Second)
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round trip through a cut link: %v, want the connection closed", err)
		}
	}
	p.Heal()
	if got, err := dialEcho(t, p.Addr()).roundTrip("after", 5*time.Second); err != nil || got != "after" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

func TestProxyHoldDeliversOnHeal(t *testing.T) {
	p := startProxy(t, startEcho(t))
	c := dialEcho(t, p.Addr())
	if _, err := c.roundTrip("before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Hold()
	if _, err := c.roundTrip("held", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("round trip through a held link: %v, want a timeout", err)
	}
	p.Heal()
	// What was sent during the partition arrives, in order, then the rest.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := c.r.ReadString('\n'); err != nil || got != "held\n" {
		t.Fatalf("after Heal, read %q, %v; want the held line", got, err)
	}
	if got, err := c.roundTrip("after", 5*time.Second); err != nil || got != "after" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
}

func TestProxyLatency(t *testing.T) {
	const d = 60 * time.Millisecond
	p := startProxy(t, startEcho(t))
	c := dialEcho(t, p.Addr())
	p.SetLatency(d)
	start := time.Now()
	if _, err := c.roundTrip("slow", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < d {
		t.Errorf("round trip took %v with a latency of %v", took, d)
	}
	p.SetLatency(0)
	if _, err := c.roundTrip("fast", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProxySetTarget(t *testing.T) {
	p := startProxy(t, "127.0.0.1:1") // nothing listens there
	if _, err := dialEcho(t, p.Addr()).roundTrip("nowhere", 5*time.Second); err == nil {
		t.Fatal("round trip to a closed port succeeded")
	}
	p.SetTarget(startEcho(t))
	if got, err := dialEcho(t, p.Addr()).roundTrip("moved", 5*time.Second); err != nil || got != "moved" {
		t.Fatalf("after SetTarget: %q, %v", got, err)
	}
}
