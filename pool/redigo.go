package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Redigo is a Pool over a redigo *redis.Pool. Create it with New or Dial.
type Redigo struct {
	addr string
	rp   *redis.Pool
	shas sync.Map // *Script -> string (the SHA the server returned), boxed once

	// readTimeout is the connections' backstop read timeout when known
	// (pools made by Dial), 0 otherwise.
	readTimeout time.Duration
}

// New wraps an existing redigo pool. addr must name the node the pool dials
// (host:port); it is how duplicate nodes are detected and how errors name the
// node. The redigo pool's Dial must return connections that support
// redis.ConnWithContext (redis.Dial's do).
func New(rp *redis.Pool, addr string) (*Redigo, error) {
	if rp == nil {
		return nil, errors.New("pool: nil *redis.Pool")
	}
	norm, err := normalizeAddr(addr)
	if err != nil {
		return nil, err
	}
	return &Redigo{addr: norm, rp: rp}, nil
}

// Addr returns the node's host:port.
func (p *Redigo) Addr() string { return p.addr }

// Redis returns the underlying redigo pool.
func (p *Redigo) Redis() *redis.Pool { return p.rp }

// Close closes the underlying redigo pool.
func (p *Redigo) Close() error { return p.rp.Close() }

// Eval runs s by SHA with EVALSHA, loading it with SCRIPT LOAD the first time
// and again whenever the node answers NOSCRIPT. When a pooled connection
// turns out to be closed by the node (as all of them are after a restart),
// the call is made once more on a new connection; the scripts are safe to run
// twice.
//
// When ctx has a deadline, the call runs on the calling goroutine with the
// deadline (capped by the connection's read timeout) as its socket timeout:
// cancelling ctx before its deadline does not interrupt a call already sent;
// its reply or the deadline ends it, and the connection stays usable. Without
// a deadline, cancelling ctx interrupts the call at once and the connection
// is discarded.
func (p *Redigo) Eval(ctx context.Context, s *Script, keys []string, args ...any) (any, error) {
	argv := make([]any, 0, 2+len(keys)+len(args))
	argv = append(argv, "", len(keys))
	for _, k := range keys {
		argv = append(argv, k)
	}
	argv = append(argv, args...)
	return p.withConn(ctx, func(conn redis.Conn) (any, error) {
		sha, err := p.sha(ctx, conn, s, false)
		if err != nil {
			return nil, err
		}
		argv[0] = sha
		reply, err := p.do(ctx, conn, "EVALSHA", argv...)
		if errors.Is(err, ErrNoScript) {
			if sha, err = p.sha(ctx, conn, s, true); err != nil {
				return nil, err
			}
			argv[0] = sha
			reply, err = p.do(ctx, conn, "EVALSHA", argv...)
		}
		return reply, err
	})
}

// withConn runs f on a pooled connection, and once more on a new one if the
// node had closed the pooled one.
func (p *Redigo) withConn(ctx context.Context, f func(redis.Conn) (any, error)) (any, error) {
	conn, err := p.rp.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	reply, err := f(conn)
	conn.Close()
	if !brokenConn(ctx, err) {
		return reply, err
	}
	fresh, err := p.dialFresh(ctx)
	if err != nil {
		return nil, err
	}
	defer fresh.Close()
	return f(fresh)
}

// sha returns s's SHA as a command argument: the string, in the interface
// the map holds it in, so that each call does not box it anew.
func (p *Redigo) sha(ctx context.Context, conn redis.Conn, s *Script, reload bool) (any, error) {
	if !reload {
		if v, ok := p.shas.Load(s); ok {
			return v, nil
		}
	}
	sha, err := redis.String(Do(ctx, conn, "SCRIPT", "LOAD", s.Src))
	if err != nil {
		return nil, fmt.Errorf("loading script %s: %w", s.Name, err)
	}
	var boxed any = sha
	p.shas.Store(s, boxed)
	return boxed, nil
}

// do runs one command on conn: with ctx's deadline as the socket timeout
// when ctx has one (see Eval), else as Do. A call bounded by a socket
// timeout needs no goroutine of its own, unlike redigo's DoContext: that
// goroutine, and the thread wake-ups it causes, were a good part of a
// round's latency on a quiet machine.
func (p *Redigo) do(ctx context.Context, conn redis.Conn, cmd string, args ...any) (any, error) {
	dl, ok := ctx.Deadline()
	cwt, canTime := conn.(redis.ConnWithTimeout)
	if !ok || !canTime {
		return Do(ctx, conn, cmd, args...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	left := time.Until(dl)
	if left <= 0 {
		return nil, context.DeadlineExceeded
	}
	if p.readTimeout > 0 {
		left = min(left, p.readTimeout)
	}
	reply, err := cwt.DoWithTimeout(left, cmd, args...)
	return mapReply(ctx, reply, err)
}

// Do runs one command on conn bounded by ctx and maps Redis error replies to
// *ServerError. Other packages of this module use it for commands that are not
// scripts (INFO, SCAN, ...).
func Do(ctx context.Context, conn redis.Conn, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		// redigo would race the reply against ctx.Done and might send it.
		return nil, err
	}
	reply, err := redis.DoContext(conn, ctx, cmd, args...)
	return mapReply(ctx, reply, err)
}

// mapReply maps a Redis error reply to *ServerError, and a socket timeout
// at or after ctx's deadline to context.DeadlineExceeded.
func mapReply(ctx context.Context, reply any, err error) (any, error) {
	if err != nil {
		var re redis.Error
		if errors.As(err, &re) {
			return nil, &ServerError{Msg: string(re)}
		}
		// redigo turns ctx's deadline into a socket deadline, which can
		// fire just before ctx.Done: report the caller's deadline, not a
		// slow node.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				return nil, fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
			}
		}
		return nil, err
	}
	if re, ok := reply.(redis.Error); ok {
		return nil, &ServerError{Msg: string(re)}
	}
	return reply, nil
}

func normalizeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("pool: node address %q: %w", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("pool: node address %q: missing host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("pool: node address %q: invalid port", addr)
	}
	return net.JoinHostPort(host, port), nil
}

// brokenConn reports an error of a connection the node closed (as after a
// restart), as opposed to a slow node, an error reply or the caller's
// context.
func brokenConn(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var se *ServerError
	if errors.As(err, &se) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// dialFresh opens a new connection outside the pool's idle list.
func (p *Redigo) dialFresh(ctx context.Context) (redis.Conn, error) {
	switch {
	case p.rp.DialContext != nil:
		return p.rp.DialContext(ctx)
	case p.rp.Dial != nil:
		return p.rp.Dial()
	}
	return p.rp.GetContext(ctx)
}
