package pool

import (
	"context"

	"github.com/gomodule/redigo/redis"
)

// Commander is implemented by Pools that can run a plain command on their
// node (INFO, CONFIG GET, TIME...). The coordinator uses it for node checks
// and restart detection; a Pool without it is simply not checked.
type Commander interface {
	// Command runs one command bounded by ctx; error replies are
	// *ServerError.
	Command(ctx context.Context, cmd string, args ...any) (any, error)
}

// Command runs one command on a pooled connection, bounded by ctx.
func (p *Redigo) Command(ctx context.Context, cmd string, args ...any) (any, error) {
	return p.withConn(ctx, func(conn redis.Conn) (any, error) { return p.do(ctx, conn, cmd, args...) })
}
