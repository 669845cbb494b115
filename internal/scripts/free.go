package scripts

import "github.com/quorumlock/quorumlock/pool"

// FreeAcquire is the script-free form of Acquire for a lock expected to be
// free, sent as one pipeline: SET KEYS[1] token NX PX ttl, then PTTL of the
// boot marker. A node runs these two commands for far less than one script
// call. DecodeFreeAcquire turns the replies into Acquire's reply when they
// settle the call: the key was granted and the marker has its expiry.
// Otherwise (refused, or the marker missing or without expiry) the caller
// runs Acquire, which handles those cases, and grants again the key it finds
// holding the caller's token.
//
// The two commands are not atomic, as the script is, and need not be: the
// marker's age read just after the grant, on the same connection, dates the
// node's data no less surely.
func FreeAcquire(key, marker string, token, ttlms any) []pool.Cmd {
	return []pool.Cmd{
		{Name: "SET", Args: []any{key, token, "NX", "PX", ttlms}},
		{Name: "PTTL", Args: []any{marker}},
	}
}

// DecodeFreeAcquire decodes the replies of FreeAcquire, and reports false
// when they do not settle the call (see FreeAcquire).
func DecodeFreeAcquire(replies []any) (AcquireReply, bool) {
	if len(replies) != 2 || replies[0] == nil {
		return AcquireReply{}, false
	}
	switch ok := replies[0].(type) {
	case string:
		if ok != "OK" {
			return AcquireReply{}, false
		}
	case []byte:
		if string(ok) != "OK" {
			return AcquireReply{}, false
		}
	default:
		return AcquireReply{}, false
	}
	left, err := Int(replies[1])
	if err != nil || left < 0 || left > MarkerLifeMs {
		return AcquireReply{}, false
	}
	return AcquireReply{Granted: true, MarkerAgeMs: MarkerLifeMs - left}, true
}
