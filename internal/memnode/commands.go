package memnode

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// Commands runs the plain commands the coordinator pipelines
// (scripts.FreeAcquire): SET key value [NX] [PX ms], PTTL key and GET key,
// in order and at once, failing or hanging like Eval. It is not named
// Pipeline, so that a type embedding a Node does not become a
// pool.Pipeliner by accident; a simulation wraps it to be one.
func (n *Node) Commands(ctx context.Context, cmds []pool.Cmd) ([]any, error) {
	v, err := n.call(ctx, func() (any, error) {
		out := make([]any, len(cmds))
		for i, c := range cmds {
			v, err := n.command(c)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]any), nil
}

// command runs one command of Commands; n.mu is held.
func (n *Node) command(c pool.Cmd) (any, error) {
	arg := func(i int) string { return fmt.Sprint(c.Args[i]) }
	switch strings.ToUpper(c.Name) {
	case "SET":
		if len(c.Args) < 2 {
			return nil, &pool.ServerError{Msg: "ERR wrong number of arguments for 'set' command"}
		}
		nx, ttl := false, time.Duration(0)
		for i := 2; i < len(c.Args); i++ {
			switch strings.ToUpper(arg(i)) {
			case "NX":
				nx = true
			case "PX":
				if i+1 >= len(c.Args) {
					return nil, &pool.ServerError{Msg: "ERR syntax error"}
				}
				ms, err := strconv.ParseInt(arg(i+1), 10, 64)
				if err != nil || ms <= 0 {
					return nil, &pool.ServerError{Msg: "ERR invalid expire time in 'set' command"}
				}
				ttl = time.Duration(ms) * time.Millisecond
				i++
			default:
				return nil, &pool.ServerError{Msg: "ERR syntax error"}
			}
		}
		if _, exists := n.lookup(arg(0)); exists && nx {
			return nil, nil
		}
		e := entry{val: arg(1)}
		if ttl > 0 {
			e.expires = n.clock.Now().Add(ttl)
		}
		n.keys[arg(0)] = e
		return "OK", nil
	case "PTTL":
		e, ok := n.lookup(arg(0))
		switch {
		case !ok:
			return int64(-2), nil
		case e.expires.IsZero():
			return int64(-1), nil
		}
		return e.expires.Sub(n.clock.Now()).Milliseconds(), nil
	case "GET":
		e, ok := n.lookup(arg(0))
		if !ok {
			return nil, nil
		}
		if e.notString {
			return nil, &pool.ServerError{Msg: "WRONGTYPE Operation against a key holding the wrong kind of value"}
		}
		return e.val, nil
	}
	return nil, &pool.ServerError{Msg: "ERR unknown command '" + c.Name + "'"}
}
