// Package scripts holds the Lua scripts the coordinator runs on each node and
// the decoding of their replies. Every key a script touches is passed in KEYS.
package scripts

import (
	"fmt"

	"github.com/quorumlock/quorumlock/pool"
)

// Acquire sets KEYS[1] to the token ARGV[1] with a relative expiry of ARGV[2]
// milliseconds if the key is absent. Reply: {1} when granted; {0, pttl} when
// another token holds the key (pttl is the holder's remaining milliseconds, -1
// if the key has no expiry). A key of another type is a WRONGTYPE error.
var Acquire = &pool.Script{Name: "acquire", Src: `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1}
end
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then
  return redis.error_reply('WRONGTYPE lock key holds a value that is not a string')
end
return {0, redis.call('PTTL', KEYS[1])}
`}

// Release deletes KEYS[1] only if it holds the token ARGV[1]. Reply: 1 when
// deleted, 0 when the key is absent or holds another token.
var Release = &pool.Script{Name: "release", Src: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`}

// Extend sets the expiry of KEYS[1] to ARGV[2] milliseconds from now, only if
// it holds the token ARGV[1]. Reply: 1 when extended, 0 otherwise.
var Extend = &pool.Script{Name: "extend", Src: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`}

// AcquireReply is the decoded reply of Acquire.
type AcquireReply struct {
	Granted bool
	// HolderTTLms is the holder's remaining time in milliseconds when not
	// granted (-1: the key has no expiry).
	HolderTTLms int64
}

// DecodeAcquire decodes a reply of Acquire.
func DecodeAcquire(reply any) (AcquireReply, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return AcquireReply{}, fmt.Errorf("acquire: unexpected reply %T", reply)
	}
	flag, err := Int(arr[0])
	if err != nil {
		return AcquireReply{}, fmt.Errorf("acquire: %w", err)
	}
	switch flag {
	case 1:
		return AcquireReply{Granted: true}, nil
	case 0:
		if len(arr) < 2 {
			return AcquireReply{}, fmt.Errorf("acquire: refusal without holder TTL")
		}
		ttl, err := Int(arr[1])
		if err != nil {
			return AcquireReply{}, fmt.Errorf("acquire: %w", err)
		}
		return AcquireReply{HolderTTLms: ttl}, nil
	}
	return AcquireReply{}, fmt.Errorf("acquire: unexpected flag %d", flag)
}

// DecodeFlag decodes the 0/1 reply of Release and Extend.
func DecodeFlag(reply any) (bool, error) {
	n, err := Int(reply)
	if err != nil {
		return false, err
	}
	switch n {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("unexpected reply %d", n)
}

// Int decodes an integer reply.
func Int(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	}
	return 0, fmt.Errorf("expected an integer reply, got %T", v)
}
