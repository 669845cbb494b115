package pool

import (
	"context"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Pipeliner is implemented by Pools that can send several plain commands in
// one round trip. The coordinator uses it where a script is not needed (a
// free lock is granted by SET NX PX alone): a script call costs the node
// more than the commands it runs. A Pool without it runs the script instead.
type Pipeliner interface {
	// Pipeline sends cmds together, bounded by ctx, and returns their
	// replies in order (the types Eval returns). When the node answers any
	// of them with an error reply, that *ServerError is returned, once
	// every reply has been read.
	Pipeline(ctx context.Context, cmds []Cmd) ([]any, error)
}

// Cmd is one command of a Pipeline: its name and arguments.
type Cmd struct {
	Name string
	Args []any
}

// Pipeline sends cmds on one pooled connection in one write and reads their
// replies, bounded by ctx as Eval is. A connection the node had closed is
// replaced and the commands sent once more: callers send only commands that
// are safe to run twice.
func (p *Redigo) Pipeline(ctx context.Context, cmds []Cmd) ([]any, error) {
	r, err := p.withConn(ctx, func(conn redis.Conn) (any, error) { return p.pipeline(ctx, conn, cmds) })
	if err != nil {
		return nil, err
	}
	return r.([]any), nil
}

func (p *Redigo) pipeline(ctx context.Context, conn redis.Conn, cmds []Cmd) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, c := range cmds {
		if err := conn.Send(c.Name, c.Args...); err != nil {
			return mapReply(ctx, nil, err)
		}
	}
	if err := conn.Flush(); err != nil {
		return mapReply(ctx, nil, err)
	}
	replies := make([]any, len(cmds))
	var refused error // the first error reply
	for i := range cmds {
		r, err := p.receive(ctx, conn)
		if _, isReply := err.(redis.Error); isReply {
			if refused == nil {
				refused = err
			}
			continue
		}
		if err != nil {
			// The connection is broken or out of step: redigo drops it.
			return mapReply(ctx, nil, err)
		}
		replies[i] = r
	}
	if refused != nil {
		return mapReply(ctx, nil, refused)
	}
	return replies, nil
}

// receive reads one reply, with ctx's deadline (capped by the connection's
// read timeout) as the socket timeout when ctx has one, as do does.
func (p *Redigo) receive(ctx context.Context, conn redis.Conn) (any, error) {
	dl, ok := ctx.Deadline()
	cwt, canTime := conn.(redis.ConnWithTimeout)
	if !ok || !canTime {
		return redis.ReceiveContext(conn, ctx)
	}
	left := time.Until(dl)
	if left <= 0 {
		// Too late to wait: a tiny timeout fails the read, and the
		// connection, whose replies are still due, is dropped.
		left = time.Nanosecond
	}
	if p.readTimeout > 0 {
		left = min(left, p.readTimeout)
	}
	return cwt.ReceiveWithTimeout(left)
}
