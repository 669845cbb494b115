package memnode

import (
	"context"
	"fmt"
	"strings"

	"github.com/quorumlock/quorumlock/pool"
)

var _ pool.Commander = (*Node)(nil)

// Info is what the node answers to INFO, section by section, as "key:value"
// lines. Tests set it to describe the server the node stands for.
type Info map[string]string

// SetInfo sets the node's INFO fields (for example "run_id", "role",
// "maxmemory_policy") and CONFIG GET answers (keys prefixed "config:").
func (n *Node) SetInfo(fields Info) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.info = fields
}

// Command answers INFO and CONFIG GET from the fields given to SetInfo, and
// PING; other commands are errors. It fails or hangs like Eval.
func (n *Node) Command(ctx context.Context, cmd string, args ...any) (any, error) {
	n.mu.Lock()
	fail, hang, info := n.fail, n.hang, n.info
	n.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail != nil {
		return nil, fail
	}
	switch strings.ToUpper(cmd) {
	case "PING":
		return "PONG", nil
	case "INFO":
		var b strings.Builder
		for k, v := range info {
			if !strings.HasPrefix(k, "config:") {
				fmt.Fprintf(&b, "%s:%s\r\n", k, v)
			}
		}
		return []byte(b.String()), nil
	case "CONFIG":
		if len(args) == 2 && strings.EqualFold(fmt.Sprint(args[0]), "GET") {
			name := fmt.Sprint(args[1])
			if v, ok := info["config:"+name]; ok {
				return []any{[]byte(name), []byte(v)}, nil
			}
			return []any{}, nil
		}
	}
	return nil, &pool.ServerError{Msg: "ERR unknown command '" + cmd + "'"}
}
