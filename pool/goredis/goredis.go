// Package goredis makes a github.com/redis/go-redis/v9 client a pool.Pool, so
// that a service already using go-redis can take locks over the same client
// and connection settings.
//
// A Pool talks to one standalone Redis master (a *redis.Client, not a
// cluster, ring or sentinel client: Redlock needs independent masters, one
// Pool each). It behaves as the redigo adapter pool.Redigo does:
//
//   - scripts are loaded with SCRIPT LOAD and run with EVALSHA by the SHA the
//     server returned (no SHA-1 is computed in this process, so FIPS-only
//     builds work; go-redis's own redis.NewScript hashes locally and is not
//     used), and loaded again when the node answers NOSCRIPT;
//   - every command is bounded by its context, cancellation included (go-redis
//     itself only applies a context's deadline to the socket, and only with
//     Options.ContextTimeoutEnabled);
//   - replies are int64, string, []any or nil, whatever protocol (RESP2 or
//     RESP3) the client speaks;
//   - Redis error replies are *pool.ServerError, so errors.Is(err,
//     pool.ErrWrongType) and errors.Is(err, pool.ErrNoScript) work; a failure
//     to authenticate is an ordinary error naming the node, never a
//     ServerError, and never contains the password.
//
// A Pool also implements pool.Subscriber (lock waiters are woken by release
// notices over Pub/Sub) and pool.Commander (node checks).
//
// go-redis reports some failures (a refused dial, for one) through its own
// logger as well as to the caller; redis.SetLogger directs or silences it.
package goredis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/pool"
)

// Pool is a pool.Pool over a go-redis client for one node. It is safe for
// concurrent use. Create it with Dial or New.
type Pool struct {
	addr     string
	shown    string // the node as errors name it, password hidden
	password string // to scrub from errors; empty when none
	c        *redis.Client
	shas     sync.Map // *pool.Script -> string (the SHA the server returned)
}

var (
	_ pool.Pool       = (*Pool)(nil)
	_ pool.Subscriber = (*Pool)(nil)
	_ pool.Commander  = (*Pool)(nil)
)

// New wraps an existing client. The node's address is the client's
// Options().Addr, which must be host:port on a TCP network: it is how
// duplicate nodes are detected and how errors name the node.
//
// The client's own settings apply. Two of them matter to a lock: with
// MaxRetries above zero (go-redis's default is 3), go-redis retries a command
// whose connection broke, so a node that executed a script but whose reply
// was lost may answer the retry differently (a lock it granted reported as
// held); the lock stays safe, since every script checks ownership, but a vote
// may be lost. And a command abandoned because its context ended keeps its
// connection until the client's ReadTimeout (or the context's deadline with
// ContextTimeoutEnabled) ends the read: keep ReadTimeout finite. Dial sets
// both for you.
func New(client *redis.Client) (*Pool, error) {
	if client == nil {
		return nil, errors.New("goredis: nil *redis.Client")
	}
	opt := client.Options()
	if opt.Network != "" && opt.Network != "tcp" {
		return nil, fmt.Errorf("goredis: network %q: only tcp nodes are supported", opt.Network)
	}
	addr, err := normalizeAddr(opt.Addr)
	if err != nil {
		return nil, err
	}
	return &Pool{addr: addr, shown: addr, password: opt.Password, c: client}, nil
}

// Addr returns the node's host:port.
func (p *Pool) Addr() string { return p.addr }

// Client returns the underlying go-redis client.
func (p *Pool) Client() *redis.Client { return p.c }

// Close closes the underlying client, also one that was passed to New.
func (p *Pool) Close() error { return p.c.Close() }

// String names the node (with any password hidden).
func (p *Pool) String() string { return p.shown }

// Eval runs s by SHA with EVALSHA, loading it with SCRIPT LOAD the first time
// and again whenever the node answers NOSCRIPT (after a restart or SCRIPT
// FLUSH). The call is bounded by ctx: when ctx ends first, Eval returns
// ctx's error at once.
func (p *Pool) Eval(ctx context.Context, s *pool.Script, keys []string, args ...any) (any, error) {
	sha, err := p.sha(ctx, s, false)
	if err != nil {
		return nil, err
	}
	argv := make([]any, 0, 3+len(keys)+len(args))
	argv = append(argv, "evalsha", sha, len(keys))
	for _, k := range keys {
		argv = append(argv, k)
	}
	argv = append(argv, args...)
	reply, err := p.do(ctx, argv)
	if errors.Is(err, pool.ErrNoScript) {
		if sha, err = p.sha(ctx, s, true); err != nil {
			return nil, err
		}
		argv[1] = sha
		reply, err = p.do(ctx, argv)
	}
	return reply, err
}

// sha returns the SHA the server gave s, loading s when it is not known yet
// or reload is set.
func (p *Pool) sha(ctx context.Context, s *pool.Script, reload bool) (string, error) {
	if !reload {
		if v, ok := p.shas.Load(s); ok {
			return v.(string), nil
		}
	}
	reply, err := p.do(ctx, []any{"script", "load", s.Src})
	if err != nil {
		return "", fmt.Errorf("loading script %s: %w", s.Name, err)
	}
	sha, ok := reply.(string)
	if !ok || sha == "" {
		return "", fmt.Errorf("loading script %s: unexpected reply %T", s.Name, reply)
	}
	p.shas.Store(s, sha)
	return sha, nil
}

// do runs one command bounded by ctx and normalises its reply and error.
//
// go-redis does not watch a context while it waits for a reply (at most it
// turns the context's deadline into a socket deadline), so the command runs
// in its own goroutine and do returns as soon as ctx ends. The abandoned
// command finishes or fails in the background, bounded by the client's read
// timeout, and go-redis then discards or reuses its connection.
func (p *Pool) do(ctx context.Context, argv []any) (any, error) {
	return p.watch(ctx, func() (any, error) {
		v, err := p.c.Do(ctx, argv...).Result()
		return p.result(ctx, v, err)
	})
}

// watch runs call, and returns when it does or as soon as ctx ends (see do).
func (p *Pool) watch(ctx context.Context, call func() (any, error)) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ctx.Done() == nil { // cannot end: no need to watch it
		return call()
	}
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := call()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Pipeline sends cmds in one round trip, bounded by ctx as Eval is, and
// returns their replies in order. An error reply to any of them is returned
// as a *pool.ServerError once every reply has been read.
func (p *Pool) Pipeline(ctx context.Context, cmds []pool.Cmd) ([]any, error) {
	v, err := p.watch(ctx, func() (any, error) {
		pipe := p.c.Pipeline()
		sent := make([]*redis.Cmd, len(cmds))
		for i, c := range cmds {
			sent[i] = pipe.Do(ctx, append([]any{c.Name}, c.Args...)...)
		}
		_, _ = pipe.Exec(ctx) // each command holds its own reply or error
		replies := make([]any, len(cmds))
		var refused error
		for i, c := range sent {
			v, err := c.Result()
			v, err = p.result(ctx, v, err)
			var se *pool.ServerError
			switch {
			case errors.As(err, &se):
				refused = cmp.Or(refused, err)
			case err != nil:
				return nil, err
			}
			replies[i] = v
		}
		if refused != nil {
			return nil, refused
		}
		return replies, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]any), nil
}

func (p *Pool) result(ctx context.Context, v any, err error) (any, error) {
	if err == nil {
		return normalize(v), nil
	}
	if err == redis.Nil {
		return nil, nil
	}
	return nil, p.mapError(ctx, err)
}

// mapError turns go-redis's errors into this module's: error replies become
// *pool.ServerError, except a refused authentication, which is a failure to
// connect; a command cut short by ctx reports ctx's error.
func (p *Pool) mapError(ctx context.Context, err error) error {
	if redis.IsAuthError(err) {
		return fmt.Errorf("connecting to %s: %w", p.shown, scrub(err, p.password))
	}
	var re redis.Error
	if errors.As(err, &re) {
		return &pool.ServerError{Msg: re.Error()}
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	// With ContextTimeoutEnabled the context's deadline is the socket's,
	// which may fire an instant before the context's own timer does: a
	// net timeout at or past the deadline is the deadline's.
	var ne net.Error
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) && errors.As(err, &ne) && ne.Timeout() {
		return context.DeadlineExceeded
	}
	return scrub(err, p.password)
}

func normalizeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("goredis: node address %q: %w", addr, err)
	}
	if host == "" {
		return "", fmt.Errorf("goredis: node address %q: missing host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("goredis: node address %q: invalid port", addr)
	}
	return net.JoinHostPort(host, port), nil
}
