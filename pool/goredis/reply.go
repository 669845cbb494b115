package goredis

import (
	"errors"
	"math/big"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/quorumlock/quorumlock/pool"
)

// normalize turns a go-redis reply into the shapes every Pool returns:
// int64, string, []any, nil, or a *pool.ServerError for an error reply inside
// an array. RESP3 types are mapped to what the same reply is in RESP2, so the
// coordinator decodes them alike whatever protocol the client negotiated:
// true is 1 and false is nil (Lua's booleans), a map is a flat array of keys
// and values, a set an array, a double or big number its decimal string.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, int64, string:
		return x
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	case bool:
		if x {
			return int64(1)
		}
		return nil
	case map[any]any:
		out := make([]any, 0, 2*len(x))
		for k, e := range x {
			out = append(out, normalize(k), normalize(e))
		}
		return out
	case map[string]any:
		out := make([]any, 0, 2*len(x))
		for k, e := range x {
			out = append(out, k, normalize(e))
		}
		return out
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case *big.Int:
		return x.String()
	case error:
		var re redis.Error
		if errors.As(x, &re) {
			return &pool.ServerError{Msg: re.Error()}
		}
		return x
	}
	return v
}

// scrub removes a password from an error's text, should a driver ever echo
// it.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "***"))
}
