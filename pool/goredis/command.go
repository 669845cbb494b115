package goredis

import "context"

// Command runs one command on a pooled connection, bounded by ctx. Error
// replies are *pool.ServerError; the reply is normalised as Eval's.
func (p *Pool) Command(ctx context.Context, cmd string, args ...any) (any, error) {
	argv := make([]any, 0, 1+len(args))
	argv = append(argv, cmd)
	argv = append(argv, args...)
	return p.do(ctx, argv)
}
