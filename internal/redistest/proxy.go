package redistest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one address, usually a
// Server's. It makes a node slow or unreachable on the network while the
// process itself stays healthy, which Pause cannot do: a node that answers
// every command, only late, or one behind a partition that later heals.
//
// Each connection accepted is forwarded to its own connection to the
// target. Bytes keep their order in each direction; a delay postpones each
// chunk from the moment it was read, so it adds latency without limiting
// throughput. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	replyDelay   atomic.Int64 // target -> client, in ns
	requestDelay atomic.Int64 // client -> target, in ns
	accepted     atomic.Int64

	mu     sync.Mutex
	open   chan struct{} // closed while forwarding, open while cut
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	// ctx ends at Close; done is its Done channel.
	ctx    context.Context
	cancel context.CancelFunc
	done   <-chan struct{}
}

// proxyChunk is how much a pump reads at a time.
const proxyChunk = 32 << 10

// proxyQueue is how many chunks each direction of a connection holds before
// it stops reading: enough that a delay of many round trips does not stall a
// pipelining client, and a bound on what a cut connection buffers.
const proxyQueue = 1024

// NewProxy starts a proxy in front of target (host:port) and closes it when
// tb ends. It starts with no delay, forwarding.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p, err := StartProxy(target)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// StartProxy is NewProxy for callers without a testing.TB; the caller
// closes it. The target is only dialled when a client connects, so it may
// be down.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	open := make(chan struct{})
	close(open)
	p := &Proxy{target: target, ln: ln, open: open, conns: map[net.Conn]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.done = p.ctx.Done()
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's 127.0.0.1:port, to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns the redis:// URL of the proxy.
func (p *Proxy) URL() string { return "redis://" + p.Addr() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetDelay delays every chunk sent by the target to the client by d, from
// the moment the proxy read it: each request/reply round trip through the
// proxy takes d longer, as with a node that answers late. It applies to
// chunks read from then on; 0 removes it.
func (p *Proxy) SetDelay(d time.Duration) { p.replyDelay.Store(int64(max(d, 0))) }

// SetRequestDelay delays every chunk sent by the client to the target by d,
// as SetDelay does the other way. With both set, a round trip takes the sum
// longer.
func (p *Proxy) SetRequestDelay(d time.Duration) { p.requestDelay.Store(int64(max(d, 0))) }

// Cut stops forwarding in both directions, as a network partition does:
// connections stay open and new ones are accepted, but no byte passes. What
// is sent meanwhile is held (up to a bound per connection, then the sender
// blocks) and delivered in order by Heal, as TCP would after a short
// partition.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// Heal resumes forwarding after Cut.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// Accepted returns how many client connections the proxy has accepted: how
// often a pool in front of it had to dial.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Close stops accepting, closes every connection in both directions and
// waits for the proxy's goroutines to end. It is safe to call more than
// once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.done:
				return
			case <-time.After(5 * time.Millisecond):
				// Out of file descriptors, say: the pool that dials will
				// see its connection time out, as with a saturated node.
				continue
			}
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

// gate returns a channel that is closed while the proxy forwards.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// track records conns so that Close can close them; it fails once Close has
// begun.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

// link is one proxied connection: the client's and the one to the target.
type link struct {
	client, server net.Conn
	once           sync.Once
	dead           chan struct{} // closed by abort
}

// abort tears the link down at once, whatever is still queued: one side
// failed, so nothing more can be delivered in order.
func (l *link) abort() {
	l.once.Do(func() {
		close(l.dead)
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	// A target that is down closes the client's connection, as the node
	// itself would refuse it.
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	server, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	defer p.untrack(client, server)
	l := &link{client: client, server: server, dead: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(l, server, client, &p.requestDelay) }()
	go func() { defer wg.Done(); p.pump(l, client, server, &p.replyDelay) }()
	wg.Wait()
	_ = client.Close()
	_ = server.Close()
}

// chunk is what one read returned, and when it may be written on.
type chunk struct {
	data []byte
	due  time.Time
}

// pump forwards src to dst. A reader stamps each chunk with its due time
// (read time plus the delay) and queues it; this goroutine writes the chunks
// in order, each no earlier than its due time. Separating the two is what
// keeps a delay from serializing the traffic: chunks read 1ms apart leave
// 1ms apart, both d late, instead of 2d apart.
//
// At the end of src the end is passed on (a half-close of dst) once the
// queue is written out; on any failure, or Close, the whole link is torn
// down.
func (p *Proxy) pump(l *link, dst, src net.Conn, delay *atomic.Int64) {
	queue := make(chan chunk, proxyQueue)
	stop := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(queue)
		buf := make([]byte, proxyChunk)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(delay.Load()))}
				select {
				case queue <- c:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	ok := p.drain(l, dst, queue)
	close(stop)
	if !ok {
		l.abort()
	} else if tc, isTCP := dst.(*net.TCPConn); isTCP {
		_ = tc.CloseWrite()
	}
	<-read
}

// drain writes the queued chunks to dst, each at its due time and only while
// the proxy forwards. It reports whether the queue ended normally (the end
// of src), rather than by a failure, an abort or Close.
func (p *Proxy) drain(l *link, dst net.Conn, queue <-chan chunk) bool {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.dead:
				return false
			case <-p.done:
				return false
			}
		}
		select {
		case <-p.gate():
		case <-l.dead:
			return false
		case <-p.done:
			return false
		}
		if _, err := dst.Write(c.data); err != nil {
			return false
		}
	}
	return true
}
