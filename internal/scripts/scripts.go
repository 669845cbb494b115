// Package scripts holds the Lua scripts the coordinator runs on each node and
// the decoding of their replies. Every key a script touches is passed in KEYS.
package scripts

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/quorumlock/quorumlock/pool"
)

// acquireSrc is shared by Acquire and AcquireFenced. KEYS[1] is the lock,
// KEYS[2] the node's boot marker, KEYS[3] (fenced only) the fence counter;
// ARGV[1] is the token and ARGV[2] the TTL in milliseconds. With ARGV[3] (a
// waiter's name) and ARGV[4] (milliseconds), the last key is the lock's turn
// queue (see ReleaseTurn): a lock promised to this waiter is granted to it,
// one promised to another is refused as if held by it. Unless ARGV[4] is
// "0", a refused caller joins the queue (keeping its place if already in it,
// the queue expiring ARGV[4] after its last arrival), and a caller granted a
// free lock leaves it.
//
// The boot marker holds the server time at which it was written, and
// expires MarkerLifeMs after it: the first call to find it missing (a node
// started empty or flushed) writes it. Its age, MarkerLifeMs minus its PTTL,
// tells the client how long ago the node last lost its data, and, read
// again and again, how the node's clock runs: one command, no extra round
// trip. Refusals read it too: a client judges a node's grant against what
// its earlier replies said. It also orders the turn queue. A marker without
// expiry (written by an older client) gets the expiry its value implies.
//
// Every command a script runs is one for the server to execute and count:
// the common paths run as few as they can (a grant on a node that is not
// the gate: SET and PTTL; TestScriptCommands counts them).
var acquireSrc = strings.NewReplacer(
	"MARKER_LIFE", strconv.FormatInt(MarkerLifeMs, 10),
	"HOLDER_LEN", strconv.Itoa(HolderIDLen),
	"TTL_UNREAD", strconv.Itoa(TTLUnread),
).Replace(acquireLua)

const acquireLua = `
local queue = ARGV[3] and KEYS[#KEYS]
local join = queue and ARGV[4] ~= '0'
local fenced = #KEYS - (queue and 1 or 0) >= 3
local life = MARKER_LIFE
local function age()
  local left = redis.call('PTTL', KEYS[2])
  if left >= 0 then
    return life - left
  end
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  local born = left == -1 and tonumber(redis.call('GET', KEYS[2]))
  if not born or born > now then
    redis.call('SET', KEYS[2], string.format('%.0f', now), 'PX', life)
    return 0
  end
  redis.call('PEXPIRE', KEYS[2], string.format('%.0f', born + life - now))
  return now - born
end
local granted, v = false, false
if join then
  -- A waiter at the gate: the lock is mostly held or promised, read it
  -- first.
  v = redis.pcall('GET', KEYS[1])
  if not v or v == 'turn:' .. ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    granted = true
  end
elseif redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  granted = true
else
  v = redis.pcall('GET', KEYS[1])
  if not v then
    -- Gone since SET NX found it: only where time moves within a script
    -- (an emulated server), as a promise expires.
    granted = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and true or false
  elseif queue and v == 'turn:' .. ARGV[3] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    granted, v = true, 'turn'
  end
end
local fence = 0
if granted then
  if fenced then
    fence = redis.call('INCR', KEYS[3])
  end
  if join and not v then
    -- A free lock: we may have been queued. A turn was taken out of the
    -- queue by the release that promised it.
    redis.call('ZREM', queue, ARGV[3])
  end
  return {1, 0, '', fence, age()}
end
if type(v) == 'table' then
  return redis.error_reply('WRONGTYPE lock key holds a value that is not a string')
end
if not v then
  -- Gone and taken again within this script (an emulated server).
  return {0, -2, '', 0, age()}
end
if v == ARGV[1] then
  -- Our own token: a retry of a call whose reply was lost. Still granted;
  -- the fence is the counter now, at least what that call drew.
  if fenced then
    fence = tonumber(redis.call('GET', KEYS[3]) or '0')
  end
  return {1, 0, '', fence, age()}
end
local a = age()
if join then
  redis.call('ZADD', queue, 'NX', a, ARGV[3])
  redis.call('PEXPIRE', queue, ARGV[4])
end
local holder = string.sub(v, 1, HOLDER_LEN)
if string.sub(v, 1, 5) == 'turn:' then
  holder = string.sub(v, 1, 5 + HOLDER_LEN)
  if join then
    -- A waiter in the queue is named when its turn comes: when another's
    -- promise ends is no concern of its, and is not read.
    return {0, TTL_UNREAD, holder, 0, a}
  end
end
return {0, redis.call('PTTL', KEYS[1]), holder, 0, a}
`

// MarkerLifeMs is how long a boot marker lives, in milliseconds (about 31
// years): its expiry is only the means of reading its age with PTTL.
const MarkerLifeMs = 1_000_000_000_000

// Acquire sets the lock key KEYS[1] to the token ARGV[1] with a relative
// expiry of ARGV[2] milliseconds if the key is absent. Reply: {granted (1/0),
// holder's PTTL in ms (-1: no expiry; TTLUnread: not read), the first 8
// characters of the holder's token (enough to tell owners apart, far too
// little to release their lock), fence (0), boot marker age in ms}. A lock
// key of another type is a WRONGTYPE error. A key already holding the
// caller's own token (a retried call whose reply was lost) is granted again.
// Called with a waiter's name (ARGV[3], ARGV[4], the queue as last key), it
// also keeps the lock's turn queue (see acquireSrc and ReleaseTurn).
var Acquire = &pool.Script{Name: "acquire", Src: acquireSrc}

// AcquireFenced is Acquire that also increments the fence counter KEYS[3]
// when granted and replies its new value as the fence.
var AcquireFenced = &pool.Script{Name: "acquire-fenced", Src: acquireSrc}

// RaiseFence raises the node's fence counter KEYS[2] to at least ARGV[2]
// (never lowering it) and replies 1 if KEYS[1] still holds the token ARGV[1],
// 0 otherwise. Only the first reply proves that no later owner could have
// drawn a token from this node before the counter reached ARGV[2].
var RaiseFence = &pool.Script{Name: "raise-fence", Src: `
local c = tonumber(redis.call('GET', KEYS[2]) or '0')
if c < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0
`}

// TTLUnread is the holder's PTTL Acquire replies when it did not read it: a
// lock promised to another waiter, refused to a waiter that joins the turn
// queue (it is named when its turn comes, whenever the promise ends).
const TTLUnread = -3

// HolderIDLen is how many characters of the holder's token Acquire returns.
const HolderIDLen = 8

// Promised prefixes the value of a lock key promised to a waiter (see
// ReleaseTurn), and the holder Acquire reports for it, followed by the
// first HolderIDLen characters of that waiter's name.
const Promised = "turn:"

// Release deletes KEYS[1] only if it holds the token ARGV[1], and then
// publishes an empty message on the channel named KEYS[1] so that waiters
// learn at once that the lock is free on this node, unless ARGV[2] is "0"
// (the lock's gate announces the release: see ReleaseTurn). Reply: 1 when
// deleted, 0 when the key is absent or holds another token.
var Release = &pool.Script{Name: "release", Src: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '0' then
    redis.call('PUBLISH', KEYS[1], '')
  end
  return 1
end
return 0
`}

// ReleaseTurn is Release on the node that keeps the lock's turn queue
// KEYS[2] (see Acquire): when the lock holds the token ARGV[1], it takes the
// first waiter out of the queue and promises it the lock for ARGV[2]
// milliseconds (the lock key holds Promised and the waiter's name
// meanwhile: Acquire grants it to that waiter only), and publishes the
// waiter's name on that waiter's own channel (TurnChannel), so that only
// that waiter hears of it; when nobody is queued it deletes the lock and
// publishes an empty message on the channel KEYS[1], for every waiter.
// Reply: that of Release.
var ReleaseTurn = &pool.Script{Name: "release-turn", Src: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local next = redis.call('ZPOPMIN', KEYS[2])[1]
  if next then
    redis.call('SET', KEYS[1], 'turn:' .. next, 'PX', ARGV[2])
    redis.call('PUBLISH', KEYS[1] .. '\0turn:' .. next, next)
  else
    redis.call('DEL', KEYS[1])
    redis.call('PUBLISH', KEYS[1], '')
  end
  return 1
end
return 0
`}

// TurnChannel is the channel on which the release of lock key names waiter
// as the next in line (ReleaseTurn): a waiter subscribes to its own.
func TurnChannel(key, waiter string) string { return key + "\x00turn:" + waiter }

// Leave takes the waiter ARGV[1] out of the turn queue KEYS[1]. Reply: 1 if
// it was queued, 0 otherwise.
var Leave = &pool.Script{Name: "leave", Src: `
return redis.call('ZREM', KEYS[1], ARGV[1])
`}

// ExtendMany extends many locks in one call: for each i, KEYS[i] gets an
// expiry of ARGV[2i] milliseconds if it holds the token ARGV[2i-1]. A key of
// another type counts as not held rather than failing the batch. Reply: an
// array of 0/1, one per key.
var ExtendMany = &pool.Script{Name: "extend-many", Src: `
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.pcall('GET', key)
  if v == ARGV[2*i-1] then
    out[i] = redis.call('PEXPIRE', key, ARGV[2*i])
  else
    out[i] = 0
  end
end
return out
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
	// granted (-1: the key has no expiry; TTLUnread: not read).
	HolderTTLms int64
	// Holder is the start of the holder's token when not granted.
	Holder string
	// Fence is the node's fence counter after a fenced grant.
	Fence int64
	// MarkerAgeMs is how long ago, by the node's clock, the node last found
	// itself without data.
	MarkerAgeMs int64
}

// DecodeAcquire decodes a reply of Acquire or AcquireFenced.
func DecodeAcquire(reply any) (AcquireReply, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 5 {
		return AcquireReply{}, fmt.Errorf("acquire: unexpected reply %T of %d elements, want 5", reply, len(arr))
	}
	var ints [5]int64
	for _, i := range []int{0, 1, 3, 4} {
		v, err := Int(arr[i])
		if err != nil {
			return AcquireReply{}, fmt.Errorf("acquire: element %d: %w", i, err)
		}
		ints[i] = v
	}
	r := AcquireReply{HolderTTLms: ints[1], Fence: ints[3], MarkerAgeMs: ints[4]}
	switch ints[0] {
	case 1:
		r.Granted = true
	case 0:
	default:
		return AcquireReply{}, fmt.Errorf("acquire: unexpected flag %d", ints[0])
	}
	switch h := arr[2].(type) {
	case []byte:
		r.Holder = string(h)
	case string:
		r.Holder = h
	default:
		return AcquireReply{}, fmt.Errorf("acquire: holder is %T, want a string", arr[2])
	}
	return r, nil
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

// DecodeFlags decodes the array reply of ExtendMany, expecting n flags.
func DecodeFlags(reply any, n int) ([]bool, error) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != n {
		return nil, fmt.Errorf("extend-many: unexpected reply %T of %d flags, want %d", reply, len(arr), n)
	}
	out := make([]bool, n)
	for i, v := range arr {
		f, err := DecodeFlag(v)
		if err != nil {
			return nil, fmt.Errorf("extend-many: %w", err)
		}
		out[i] = f
	}
	return out, nil
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
