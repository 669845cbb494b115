// Package memnode is an in-memory Redis node that runs the lock scripts'
// semantics in Go, with expiry driven by a clock.Clock and faults injected by
// hand. Unit tests and simulations use it in place of a real server.
package memnode

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// Node is an in-memory pool.Pool. It is safe for concurrent use.
type Node struct {
	addr  string
	clock clock.Clock

	mu       sync.Mutex
	keys     map[string]entry
	queues   map[string]*queue
	fail     error
	delay    time.Duration
	hang     chan struct{} // non-nil while hung; closed on Unhang
	hangNext int           // how many of the next calls hang (HangNext)
	hangSome chan struct{} // what those calls wait on; closed on Unhang
	calls    int
	applied  int
	finished int
	subs     []*sub
	info     Info
}

// queue is a lock's turn queue: waiters by arrival (a sorted set on a real
// node), gone when it expires.
type queue struct {
	members []queued // by score, then name
	expires time.Time
}

type queued struct {
	name  string
	score int64
}

type entry struct {
	val       string
	notString bool
	expires   time.Time // zero: no expiry
}

var _ pool.Pool = (*Node)(nil)

// New returns an empty node named addr whose keys expire by c.
func New(addr string, c clock.Clock) *Node {
	return &Node{addr: addr, clock: c, keys: map[string]entry{}, queues: map[string]*queue{}}
}

// Addr returns the node's name.
func (n *Node) Addr() string { return n.addr }

// Fail makes every following call return err (nil heals the node).
func (n *Node) Fail(err error) {
	n.mu.Lock()
	n.fail = err
	n.mu.Unlock()
}

// Hang makes every following call block until its context ends or Unhang is
// called: a node that accepts connections but never answers.
func (n *Node) Hang() {
	n.mu.Lock()
	if n.hang == nil {
		n.hang = make(chan struct{})
	}
	n.hangNext = 0
	n.mu.Unlock()
}

// HangNext makes the next k calls block until their context ends or Unhang
// is called, and not the calls after them: one connection lost on its way
// to a node that still answers on the others.
func (n *Node) HangNext(k int) {
	n.mu.Lock()
	if n.hangSome == nil {
		n.hangSome = make(chan struct{})
	}
	n.hangNext = k
	n.mu.Unlock()
}

// Unhang releases the calls blocked by Hang or HangNext; they then run
// normally.
func (n *Node) Unhang() {
	n.mu.Lock()
	for _, c := range []*chan struct{}{&n.hang, &n.hangSome} {
		if *c != nil {
			close(*c)
			*c = nil
		}
	}
	n.hangNext = 0
	n.mu.Unlock()
}

// SetDelay makes every call wait d on the node's clock before it runs.
func (n *Node) SetDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = d
	n.mu.Unlock()
}

// Calls returns how many calls the node received, and how many of them ran.
func (n *Node) Calls() (received, applied int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls, n.applied
}

// Finished returns how many calls have returned, whatever their outcome: a
// call received has not necessarily taken effect yet.
func (n *Node) Finished() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.finished
}

// Get returns a key's string value and remaining time to live (-1 when the
// key has no expiry); ok is false when the key is absent or expired.
func (n *Node) Get(key string) (val string, ttl time.Duration, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.lookup(key)
	if !ok {
		return "", 0, false
	}
	if e.expires.IsZero() {
		return e.val, -1, true
	}
	return e.val, e.expires.Sub(n.clock.Now()), true
}

// Set writes a string key with a time to live (0: none), as SET would.
func (n *Node) Set(key, val string, ttl time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := entry{val: val}
	if ttl > 0 {
		e.expires = n.clock.Now().Add(ttl)
	}
	n.keys[key] = e
}

// SetNonString makes key hold a value of another type (as a list would).
func (n *Node) SetNonString(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keys[key] = entry{notString: true}
}

// Flush removes every key, as a restart without persistence would.
func (n *Node) Flush() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keys = map[string]entry{}
	n.queues = map[string]*queue{}
}

// Eval runs the semantics of the script named s.Name.
func (n *Node) Eval(ctx context.Context, s *pool.Script, keys []string, args ...any) (any, error) {
	return n.call(ctx, func() (any, error) { return n.run(s.Name, keys, args) })
}

// call counts a call received, makes it hang, wait or fail as the node is
// set to, then applies it with n.mu held; it counts the call finished
// whatever its outcome.
func (n *Node) call(ctx context.Context, apply func() (any, error)) (any, error) {
	defer n.leave()
	if err := n.enter(ctx); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.applied++
	return apply()
}

// enter is call's first part: the count, the hang, the delay, the failure.
func (n *Node) enter(ctx context.Context) error {
	n.mu.Lock()
	n.calls++
	fail, delay, hang := n.fail, n.delay, n.hang
	if hang == nil && n.hangNext > 0 {
		hang = n.hangSome
		n.hangNext--
	}
	n.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if delay > 0 {
		if err := clock.Sleep(ctx, n.clock, delay); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fail
}

func (n *Node) leave() {
	n.mu.Lock()
	n.finished++
	n.mu.Unlock()
}

func (n *Node) run(name string, keys []string, args []any) (any, error) {
	if name == "extend-many" {
		return n.extendMany(keys, args)
	}
	if len(keys) < 1 {
		return nil, &pool.ServerError{Msg: fmt.Sprintf("ERR script %s expects a key", name)}
	}
	key := keys[0]
	fence := func() (int64, error) {
		if len(keys) < 2 {
			return 0, &pool.ServerError{Msg: "ERR script " + name + " expects a fence key"}
		}
		e, ok := n.lookup(keys[1])
		if !ok {
			return 0, nil
		}
		v, err := strconv.ParseInt(e.val, 10, 64)
		if err != nil || e.notString {
			return 0, &pool.ServerError{Msg: "ERR value is not an integer or out of range"}
		}
		return v, nil
	}
	str := func(i int) string {
		if i < len(args) {
			return fmt.Sprint(args[i])
		}
		return ""
	}
	ms := func(i int) (time.Duration, error) {
		v, err := strconv.ParseInt(str(i), 10, 64)
		if err != nil || v <= 0 {
			return 0, &pool.ServerError{Msg: "ERR invalid expire time"}
		}
		return time.Duration(v) * time.Millisecond, nil
	}
	wrongType := &pool.ServerError{Msg: "WRONGTYPE Operation against a key holding the wrong kind of value"}
	e, exists := n.lookup(key)
	switch name {
	case "acquire", "acquire-fenced":
		if len(args) < 2 {
			return nil, &pool.ServerError{Msg: "ERR script " + name + " expects a token and a ttl"}
		}
		return n.acquire(name, keys, args, ms)
	case "release", "release-turn":
		if exists && e.notString {
			return nil, wrongType
		}
		var promise time.Duration
		if name == "release-turn" {
			if len(keys) < 2 {
				return nil, &pool.ServerError{Msg: "ERR script release-turn expects a queue key"}
			}
			var err error
			if promise, err = ms(1); err != nil {
				return nil, err
			}
		}
		if exists && e.val == str(0) {
			delete(n.keys, key)
			next := ""
			if name == "release-turn" {
				if next = n.popQueue(keys[1]); next != "" {
					n.keys[key] = entry{val: scripts.Promised + next, expires: n.clock.Now().Add(promise)}
				}
			}
			switch {
			case next != "":
				n.publish(scripts.TurnChannel(key, next), next)
			case name == "release-turn" || str(1) != "0":
				n.publish(key, "")
			}
			return int64(1), nil
		}
		return int64(0), nil
	case "leave":
		if n.leaveQueue(key, str(0)) {
			return int64(1), nil
		}
		return int64(0), nil
	case "raise-fence":
		f, err := fence()
		if err != nil {
			return nil, err
		}
		want, err := strconv.ParseInt(str(1), 10, 64)
		if err != nil {
			return nil, &pool.ServerError{Msg: "ERR fence is not an integer"}
		}
		if f < want {
			n.keys[keys[1]] = entry{val: strconv.FormatInt(want, 10)}
		}
		if exists && !e.notString && e.val == str(0) {
			return int64(1), nil
		}
		return int64(0), nil
	case "extend":
		ttl, err := ms(1)
		if err != nil {
			return nil, err
		}
		if exists && e.notString {
			return nil, wrongType
		}
		if exists && e.val == str(0) {
			e.expires = n.clock.Now().Add(ttl)
			n.keys[key] = e
			return int64(1), nil
		}
		return int64(0), nil
	}
	return nil, &pool.ServerError{Msg: "ERR unknown script " + name}
}

// acquire runs the acquire scripts: KEYS lock, boot marker[, fence][,
// queue]; ARGV token, ttl[, waiter, queue ttl].
func (n *Node) acquire(name string, keys []string, args []any, ms func(int) (time.Duration, error)) (any, error) {
	ttl, err := ms(1)
	if err != nil {
		return nil, err
	}
	token := fmt.Sprint(args[0])
	queueKey, waiter := "", ""
	var queueTTL time.Duration // 0: a waiter that does not join the queue
	if len(args) >= 4 {
		if fmt.Sprint(args[3]) != "0" {
			if queueTTL, err = ms(3); err != nil {
				return nil, err
			}
		}
		if len(keys) < 3 {
			return nil, &pool.ServerError{Msg: "ERR script " + name + " expects a queue key"}
		}
		queueKey, waiter = keys[len(keys)-1], fmt.Sprint(args[2])
		keys = keys[:len(keys)-1]
	}
	if len(keys) < 2 || (name == "acquire-fenced" && len(keys) < 3) {
		return nil, &pool.ServerError{Msg: "ERR script " + name + " expects more keys"}
	}
	now := n.clock.Now().UnixMilli()
	counter := func() int64 {
		f, _ := n.lookup(keys[2])
		v, _ := strconv.ParseInt(f.val, 10, 64)
		return v
	}
	e, exists := n.lookup(keys[0])
	if exists && e.notString {
		return nil, &pool.ServerError{Msg: "WRONGTYPE lock key holds a value that is not a string"}
	}
	join := queueKey != "" && queueTTL > 0
	turn := queueKey != "" && exists && e.val == scripts.Promised+waiter
	if !exists || turn {
		n.keys[keys[0]] = entry{val: token, expires: n.clock.Now().Add(ttl)}
		var fence int64
		if name == "acquire-fenced" {
			fence = counter() + 1
			n.keys[keys[2]] = entry{val: strconv.FormatInt(fence, 10)}
		}
		if join && !turn {
			n.leaveQueue(queueKey, waiter)
		}
		return []any{int64(1), int64(0), "", fence, n.markerAge(keys[1], now)}, nil
	}
	if e.val == token {
		var fence int64
		if name == "acquire-fenced" {
			fence = counter()
		}
		return []any{int64(1), int64(0), "", fence, n.markerAge(keys[1], now)}, nil
	}
	age := n.markerAge(keys[1], now)
	if join {
		n.joinQueue(queueKey, waiter, age, queueTTL)
	}
	pttl := int64(-1)
	if !e.expires.IsZero() {
		pttl = int64(e.expires.Sub(n.clock.Now()) / time.Millisecond)
	}
	holder := e.val[:min(len(e.val), scripts.HolderIDLen)]
	if strings.HasPrefix(e.val, scripts.Promised) {
		holder = e.val[:min(len(e.val), len(scripts.Promised)+scripts.HolderIDLen)]
		if join {
			pttl = scripts.TTLUnread
		}
	}
	return []any{int64(0), pttl, holder, int64(0), age}, nil
}

// markerAge returns the age of the boot marker key at now (milliseconds on
// the node's clock), writing it first if missing, as the acquire scripts do:
// the marker holds its birth and expires scripts.MarkerLifeMs after it.
func (n *Node) markerAge(key string, now int64) int64 {
	m, ok := n.lookup(key)
	if !ok {
		born := time.UnixMilli(now)
		n.keys[key] = entry{val: strconv.FormatInt(now, 10), expires: born.Add(scripts.MarkerLifeMs * time.Millisecond)}
		return 0
	}
	if m.expires.IsZero() {
		born, _ := strconv.ParseInt(m.val, 10, 64)
		m.expires = time.UnixMilli(born).Add(scripts.MarkerLifeMs * time.Millisecond)
		n.keys[key] = m
	}
	return scripts.MarkerLifeMs - m.expires.Sub(n.clock.Now()).Milliseconds()
}

// lookupQueue returns key's queue unless it expired; n.mu is held.
func (n *Node) lookupQueue(key string) *queue {
	q := n.queues[key]
	if q != nil && !n.clock.Now().Before(q.expires) {
		delete(n.queues, key)
		return nil
	}
	return q
}

// joinQueue adds waiter to key's queue with score now unless it is queued
// already (ZADD NX), and sets the queue's expiry (PEXPIRE).
func (n *Node) joinQueue(key, waiter string, now int64, ttl time.Duration) {
	q := n.lookupQueue(key)
	if q == nil {
		q = &queue{}
		n.queues[key] = q
	}
	if !slices.ContainsFunc(q.members, func(m queued) bool { return m.name == waiter }) {
		q.members = append(q.members, queued{name: waiter, score: now})
		slices.SortStableFunc(q.members, func(a, b queued) int {
			if c := cmp.Compare(a.score, b.score); c != 0 {
				return c
			}
			return strings.Compare(a.name, b.name)
		})
	}
	q.expires = n.clock.Now().Add(ttl)
}

// leaveQueue removes waiter from key's queue (ZREM) and reports whether it
// was there.
func (n *Node) leaveQueue(key, waiter string) bool {
	q := n.lookupQueue(key)
	if q == nil {
		return false
	}
	i := slices.IndexFunc(q.members, func(m queued) bool { return m.name == waiter })
	if i < 0 {
		return false
	}
	q.members = slices.Delete(q.members, i, i+1)
	if len(q.members) == 0 {
		delete(n.queues, key)
	}
	return true
}

// popQueue removes and returns the first waiter of key's queue (ZPOPMIN),
// "" when there is none.
func (n *Node) popQueue(key string) string {
	q := n.lookupQueue(key)
	if q == nil || len(q.members) == 0 {
		return ""
	}
	first := q.members[0].name
	n.leaveQueue(key, first)
	return first
}

// Queue returns the waiters in key's turn queue, first first.
func (n *Node) Queue(key string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	if q := n.lookupQueue(key); q != nil {
		for _, m := range q.members {
			names = append(names, m.name)
		}
	}
	return names
}

func (n *Node) extendMany(keys []string, args []any) (any, error) {
	if len(args) != 2*len(keys) {
		return nil, &pool.ServerError{Msg: "ERR extend-many expects a token and a ttl per key"}
	}
	out := make([]any, len(keys))
	for i, key := range keys {
		out[i] = int64(0)
		e, ok := n.lookup(key)
		if !ok || e.notString || e.val != fmt.Sprint(args[2*i]) {
			continue
		}
		v, err := strconv.ParseInt(fmt.Sprint(args[2*i+1]), 10, 64)
		if err != nil || v <= 0 {
			return nil, &pool.ServerError{Msg: "ERR invalid expire time"}
		}
		e.expires = n.clock.Now().Add(time.Duration(v) * time.Millisecond)
		n.keys[key] = e
		out[i] = int64(1)
	}
	return out, nil
}

func (n *Node) lookup(key string) (entry, bool) {
	e, ok := n.keys[key]
	if !ok {
		return entry{}, false
	}
	if !e.expires.IsZero() && !n.clock.Now().Before(e.expires) {
		delete(n.keys, key)
		return entry{}, false
	}
	return e, true
}
