package integration

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Proxy forwards TCP connections from a fixed address on 127.0.0.1 to a
// node and injects network faults between the clients and that node. Clients
// dial the Proxy, never the node, so a fault touches every client at once and
// the address the clients know survives the node's restarts.
//
// Faults act on the link, not on Redis: Cut makes the link refuse (existing
// connections are closed, new ones are closed as soon as accepted), Hold
// makes it drop nothing but deliver nothing (bytes wait, as packets do in a
// partition that TCP retransmits through once it heals), SetLatency delays
// every byte. Heal ends Cut and Hold. A Proxy is safe for concurrent use.
type Proxy struct {
	ln net.Listener

	mu      sync.Mutex
	target  string
	refuse  bool
	gate    chan struct{} // closed while bytes may flow; open while held
	latency time.Duration
	links   map[*link]struct{}
	closed  bool

	wg sync.WaitGroup
}

// dialTimeout bounds the proxy's connection to its node: a node that is down
// refuses at once, a paused one still accepts (Docker's port forwarder does).
const dialTimeout = 2 * time.Second

// chunkSize is the most bytes forwarded in one piece.
const chunkSize = 32 << 10

// NewProxy listens on a free port of 127.0.0.1 and forwards every connection
// to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gate := make(chan struct{})
	close(gate)
	p := &Proxy{ln: ln, target: target, gate: gate, links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients dial: 127.0.0.1 and a port that stays the
// same until Close.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget points new connections at target; open ones stay where they are.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// Cut closes every open connection and closes new ones as soon as they are
// accepted, until Heal: clients see the link fail at once.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.refuse = true
	links := p.takeLinks()
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Hold stops delivering bytes in both directions, on open and new
// connections alike, until Heal: clients see no error, only silence, as in a
// partition that drops packets. Nothing is lost; held bytes are delivered on
// Heal, in order, as TCP would once the partition heals.
func (p *Proxy) Hold() {
	p.mu.Lock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // already held
	}
	p.mu.Unlock()
}

// Heal ends Cut and Hold.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.refuse = false
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	p.mu.Unlock()
}

// SetLatency delays every byte by d/2 in each direction, so that every round
// trip through the proxy takes at least d longer. Zero removes the delay.
// Bytes already in flight keep the delay they were read with.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := p.takeLinks()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

// takeLinks empties the link set; p.mu must be held.
func (p *Proxy) takeLinks() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	clear(p.links)
	return links
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (too many open files): back off a
			// little rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		refuse, closed, target := p.refuse, p.closed, p.target
		p.mu.Unlock()
		if refuse || closed {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c, target)
	}
}

// serve connects one client to the target and forwards until either side
// closes or the link is cut.
func (p *Proxy) serve(client net.Conn, target string) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", target, dialTimeout)
	if err != nil {
		_ = client.Close()
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed || p.refuse {
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(l, client, server) }()
	go func() { defer pumps.Done(); p.pump(l, server, client) }()
	pumps.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// chunk is a piece of the stream and the time it may be delivered.
type chunk struct {
	data []byte
	due  time.Time
}

// pump copies src to dst, holding each chunk until its due time and until the
// gate is open. Reading and writing run apart so that a delay adds latency
// without limiting throughput, and so that a held link keeps accepting bytes
// (up to the queue's size) as a kernel buffer would.
func (p *Proxy) pump(l *link, src, dst net.Conn) {
	queue := make(chan chunk, 256)
	reading := make(chan struct{})
	defer func() { <-reading }() // the link is closed by then, so the read has ended
	go func() {
		defer close(reading)
		defer close(queue)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				half := p.latency / 2
				p.mu.Unlock()
				data := append([]byte(nil), buf[:n]...)
				select {
				case queue <- chunk{data: data, due: time.Now().Add(half)}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
		}
		p.mu.Lock()
		gate := p.gate
		p.mu.Unlock()
		select {
		case <-gate:
		case <-l.done:
			return
		}
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	// src ended (everything it sent has been delivered) or dst failed: end
	// the whole link, as a Redis connection is useless half-closed.
	l.close()
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		_ = l.client.Close()
		_ = l.server.Close()
	})
}
