// Package pool is how the lock coordinator talks to one Redis node.
//
// A Pool runs Lua scripts on a single, independent Redis master. The
// coordinator holds one Pool per node and never assumes anything about a node
// beyond this interface, so a Pool can wrap a redigo pool (New, Dial), another
// client, or an in-memory simulation.
package pool

import (
	"context"
	"errors"
	"strings"
)

// Pool is a connection to one Redis node.
//
// Implementations must be safe for concurrent use, must bound every command by
// ctx (a hung node must not hold a call past ctx's end), and must report Redis
// error replies as errors (see ServerError).
type Pool interface {
	// Addr identifies the node as host:port. Two Pools with the same Addr
	// reach the same server and must never be counted as two nodes.
	Addr() string
	// Eval runs s on the node with the given keys and arguments and returns
	// the reply: int64, string ([]byte for bulk replies is allowed), []any,
	// or nil. A script unknown to the server (NOSCRIPT, as after a restart) is
	// loaded again and retried by the Pool itself.
	Eval(ctx context.Context, s *Script, keys []string, args ...any) (any, error)
}

// Script is a Lua script a Pool runs on its node.
//
// A Script is identified by pointer: Pools cache the SHA that the server's
// SCRIPT LOAD returned for it, so no SHA-1 is computed in this process (which
// keeps the library usable in FIPS-only builds). Create Scripts once and keep
// them.
type Script struct {
	// Name is a short stable name (used by simulations and in errors).
	Name string
	// Src is the Lua source. Every key the script touches must be in KEYS.
	Src string
}

// ErrWrongType is matched (with errors.Is) by a ServerError whose reply was
// WRONGTYPE: the key exists on the node but does not hold a string, so it is
// not a lock written by this library.
var ErrWrongType = errors.New("key holds a value of the wrong type")

// ErrNoScript is matched by a ServerError whose reply was NOSCRIPT.
var ErrNoScript = errors.New("script not loaded on the node")

// ServerError is an error reply from Redis (a "-ERR ..." line).
type ServerError struct {
	Msg string
}

func (e *ServerError) Error() string { return "redis: " + e.Msg }

// Is lets errors.Is match ErrWrongType and ErrNoScript by the reply's prefix.
func (e *ServerError) Is(target error) bool {
	switch target {
	case ErrWrongType:
		return strings.HasPrefix(e.Msg, "WRONGTYPE")
	case ErrNoScript:
		return strings.HasPrefix(e.Msg, "NOSCRIPT")
	}
	return false
}
