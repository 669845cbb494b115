package scripts

import (
	"fmt"

	"github.com/quorumlock/quorumlock/pool"
)

// The administration scripts: reading a lock's state and force-deleting
// locks. They run through pool.Pool.Eval like the lock scripts, so that they
// work over any Pool, and never take part in a quorum round.

// Inspect reads KEYS[1] without changing it. Reply: {0} when the key is
// absent; {1, value, pttl} when it holds a string; {2, type, pttl} when it
// holds another type. pttl is the key's remaining milliseconds, -1 when it
// has no expiry.
var Inspect = &pool.Script{Name: "inspect", Src: `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then
  return {0}
end
if t ~= 'string' then
  return {2, t, redis.call('PTTL', KEYS[1])}
end
return {1, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
`}

// Delete deletes every key in KEYS, whatever it holds, and publishes an empty
// message on the channel of each key it deleted, as Release does, so that
// waiters learn at once that the lock is free. Keys are deleted one DEL each,
// so any number of keys stays within Lua's stack limits. Reply: how many keys
// were deleted.
var Delete = &pool.Script{Name: "delete", Src: `
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('DEL', key) == 1 then
    redis.call('PUBLISH', key, '')
    n = n + 1
  end
end
return n
`}

// Scan runs one step of SCAN: from cursor ARGV[1], keys matching the glob
// pattern ARGV[2], with the COUNT hint ARGV[3]. It only reads. Reply:
// {next cursor, {keys...}}; the scan is complete when the cursor is "0". As
// with SCAN, a key may be returned more than once.
var Scan = &pool.Script{Name: "scan", Src: `
return redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
`}

// InspectReply is the decoded reply of Inspect.
type InspectReply struct {
	// Exists is false when the key is absent.
	Exists bool
	// Value is the key's value when it holds a string.
	Value string
	// Type is the key's type: "string", or another when it is not a lock.
	Type string
	// PTTLms is the key's remaining milliseconds, -1 when it has no expiry.
	PTTLms int64
}

// DecodeInspect decodes a reply of Inspect.
func DecodeInspect(reply any) (InspectReply, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) == 0 {
		return InspectReply{}, fmt.Errorf("inspect: unexpected reply %T", reply)
	}
	kind, err := Int(arr[0])
	if err != nil {
		return InspectReply{}, fmt.Errorf("inspect: %w", err)
	}
	if kind == 0 {
		return InspectReply{}, nil
	}
	if kind != 1 && kind != 2 || len(arr) != 3 {
		return InspectReply{}, fmt.Errorf("inspect: unexpected reply of kind %d and length %d", kind, len(arr))
	}
	s, err := adminString(arr[1])
	if err != nil {
		return InspectReply{}, fmt.Errorf("inspect: %w", err)
	}
	pttl, err := Int(arr[2])
	if err != nil {
		return InspectReply{}, fmt.Errorf("inspect: %w", err)
	}
	r := InspectReply{Exists: true, Type: "string", PTTLms: pttl}
	if kind == 1 {
		r.Value = s
	} else {
		r.Type = s
	}
	return r, nil
}

// ScanReply is the decoded reply of Scan.
type ScanReply struct {
	Cursor string
	Keys   []string
}

// DecodeScan decodes a reply of Scan.
func DecodeScan(reply any) (ScanReply, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return ScanReply{}, fmt.Errorf("scan: unexpected reply %T", reply)
	}
	cursor, err := adminString(arr[0])
	if err != nil {
		return ScanReply{}, fmt.Errorf("scan: cursor: %w", err)
	}
	var keys []any
	switch k := arr[1].(type) {
	case []any:
		keys = k
	case nil:
	default:
		return ScanReply{}, fmt.Errorf("scan: unexpected keys %T", arr[1])
	}
	r := ScanReply{Cursor: cursor, Keys: make([]string, 0, len(keys))}
	for _, k := range keys {
		s, err := adminString(k)
		if err != nil {
			return ScanReply{}, fmt.Errorf("scan: key: %w", err)
		}
		r.Keys = append(r.Keys, s)
	}
	return r, nil
}

// adminString decodes a bulk or status string reply.
func adminString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	}
	return "", fmt.Errorf("expected a string reply, got %T", v)
}
