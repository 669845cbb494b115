package redistest_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/quorumlock/quorumlock/internal/redistest"
)

// echoServer accepts connections on 127.0.0.1 and writes back whatever it
// reads, until the test ends. It needs no redis-server, so the forwarding
// itself is tested even where Redis is missing.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func dialProxy(t *testing.T, p *redistest.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Megabytes written in writes of random sizes come back intact and in
// order, with delays in both directions (each chunk is queued and copied on
// its own, so a reordering or a reused buffer would show).
func TestProxyForwardsIntactAndInOrder(t *testing.T) {
	p := redistest.NewProxy(t, echoServer(t))
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || p.URL() != "redis://"+p.Addr() {
		t.Errorf("Addr %q, URL %q", p.Addr(), p.URL())
	}
	p.SetDelay(2 * time.Millisecond)
	p.SetRequestDelay(time.Millisecond)
	c := dialProxy(t, p)
	want := make([]byte, 4<<20)
	_, _ = rand.Read(want)
	go func() {
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1+mrand.IntN(64<<10))
			if _, err := c.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("got %d bytes, want %d; first difference at byte %d", len(got), len(want), i)
	}
	if n := p.Accepted(); n != 1 {
		t.Errorf("Accepted() = %d, want 1", n)
	}
}

// pingTime times one PING through c.
func pingTime(t *testing.T, c redis.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	pong, err := redis.String(c.Do("PING"))
	took := time.Since(start)
	if err != nil || pong != "PONG" {
		t.Fatalf("PING = %q, %v", pong, err)
	}
	return took
}

// The delays add to a real Redis round trip: the reply delay once, the
// request delay once more, and removing them makes the node fast again.
func TestProxyDelaysARedisRoundTrip(t *testing.T) {
	s := redistest.Start(t, 1)[0]
	p := redistest.NewProxy(t, s.Addr)
	if p.Target() != s.Addr {
		t.Errorf("Target() = %q, want %q", p.Target(), s.Addr)
	}
	c, err := redis.DialURL(p.URL(), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const d = 20 * time.Millisecond
	if took := pingTime(t, c); took >= d {
		t.Errorf("PING without delay took %v", took)
	}
	p.SetDelay(d)
	if took := pingTime(t, c); took < d {
		t.Errorf("PING with a reply delay of %v took %v", d, took)
	}
	p.SetRequestDelay(d)
	if took := pingTime(t, c); took < 2*d {
		t.Errorf("PING with delays of %v each way took %v", d, took)
	}
	p.SetDelay(0)
	p.SetRequestDelay(0)
	if took := pingTime(t, c); took >= d {
		t.Errorf("PING after removing the delays took %v", took)
	}
	// Data passes intact through a delayed proxy too.
	p.SetDelay(time.Millisecond)
	big := strings.Repeat("quorum", 100000)
	if _, err := c.Do("SET", "big", big); err != nil {
		t.Fatal(err)
	}
	if got, err := redis.String(c.Do("GET", "big")); err != nil || got != big {
		t.Errorf("GET big: %d bytes, %v; want %d bytes", len(got), err, len(big))
	}
}

// A delay is latency, not a bottleneck: messages sent 5ms apart through a
// 50ms delay each arrive about 50ms after being sent, so ten take about
// 50ms+45ms, not ten times 50ms.
func TestProxyDelayDoesNotSerialize(t *testing.T) {
	const d, gap, msgs = 50 * time.Millisecond, 5 * time.Millisecond, 10
	p := redistest.NewProxy(t, echoServer(t))
	p.SetDelay(d)
	c := dialProxy(t, p)
	sent := make(chan time.Time, msgs)
	go func() {
		for i := range msgs {
			sent <- time.Now()
			if _, err := c.Write([]byte{byte('a' + i), '\n'}); err != nil {
				return
			}
			time.Sleep(gap)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	start := time.Now()
	for i := range msgs {
		line, err := r.ReadString('\n')
		at := time.Now()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if line != string([]byte{byte('a' + i), '\n'}) {
			t.Fatalf("message %d = %q: out of order", i, line)
		}
		// Message i's time was sent before message i was written.
		if lat := at.Sub(<-sent); lat < d {
			t.Errorf("message %d arrived %v after it was sent, less than the delay %v", i, lat, d)
		}
	}
	if total := time.Since(start); total > msgs*d/2 {
		t.Errorf("%d messages %v apart through a %v delay took %v: the delay serializes them", msgs, gap, d, total)
	}
}

// Cut holds the traffic of open and new connections without closing them;
// Heal delivers what was held.
func TestProxyCutAndHeal(t *testing.T) {
	s := redistest.Start(t, 1)[0]
	p := redistest.NewProxy(t, s.Addr)
	before := dialProxy(t, p)
	p.Cut()
	p.Cut() // a second Cut changes nothing
	// A connection accepted while cut is held too.
	during := dialProxy(t, p)
	for _, c := range []net.Conn{before, during} {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	for i, c := range []net.Conn{before, during} {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("connection %d read %q, %v through a cut proxy; want a timeout", i, buf[:n], err)
		}
	}
	p.Heal()
	p.Heal()
	for i, c := range []net.Conn{before, during} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "+PONG\r\n" {
			t.Errorf("connection %d after Heal: %q, %v; want the held +PONG", i, line, err)
		}
	}
}

// A target that is down gets the client's connection closed, as the node
// would refuse it.
func TestProxyTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := redistest.NewProxy(t, addr)
	c := dialProxy(t, p)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read through a proxy to a closed port: %d bytes, %v; want the connection closed", n, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Close ends every connection, even one whose bytes are held by a delay or
// a cut, refuses new ones, and can be called again.
func TestProxyClose(t *testing.T) {
	p, err := redistest.StartProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	p.SetDelay(time.Hour)
	held := dialProxy(t, p)
	if _, err := held.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the echo be queued behind the delay
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a connection held by a delay")
	}
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := held.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read after Close: %d bytes, %v; want the connection closed", n, err)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the proxy accepts connections after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
