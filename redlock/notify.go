package redlock

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/scripts"
	"github.com/quorumlock/quorumlock/pool"
)

// pingEvery is how often an idle subscription connection is pinged; three
// missed answers in a row mark it dead and it is reopened.
const pingEvery = 5 * time.Second

// lingerFor is how long a key stays subscribed after its last waiter left.
const lingerFor = hotFor

// notifier wakes the Locker's waiters when a lock they wait for is released.
//
// It keeps at most one Pub/Sub connection per node (for nodes whose Pool is a
// pool.Subscriber), subscribed to the channels of the locks that some
// goroutine of this Locker waits for. The release script publishes on the
// lock's channel after deleting the key. A waiter is woken when a quorum of
// nodes has announced a release since it last tried — then the lock is free
// on a quorum —, when the lock's gate node announced one (see gate.go), or
// at once when a lock of this Locker is released. Only the
// first waiter in line is woken per release, so goroutines sharing a Locker
// take turns instead of all racing for every release. While this Locker is
// in the lock's turn queue (gate.go), it wakes only when the gate names it,
// or announces a release with nobody queued.
//
// A key's subscription outlives its last waiter by lingerFor to pingEvery
// more (idle keys are swept when the connections are pinged): a contender
// that takes the lock again and again would otherwise unsubscribe and
// subscribe on every node each time.
type notifier struct {
	lk   *Locker
	stop chan struct{}

	mu      sync.Mutex
	started bool
	stopped bool
	nodes   []*nodeSub // nil entries: the node's Pool cannot subscribe
	names   map[string]*nameWait

	// turnSuffix ends this Locker's turn channels (scripts.TurnChannel).
	turnSuffix string
}

// nameWait is the waiting state of one lock key.
type nameWait struct {
	key       string
	gate      int      // the key's gate node (gate.go)
	counts    []uint64 // releases announced per node
	confirmed []bool   // subscription active per node
	turnHeard bool     // this Locker's turn channel is subscribed on the gate
	ready     chan struct{}
	isReady   bool
	waiters   []*waiter // in arrival order

	queued bool   // this Locker is in the gate's turn queue
	joins  uint64 // attempts that asked to join it
	turn   bool   // the gate named this Locker: its next attempt asks every node
	// rewoken is set when a waiter was woken to join the queue again after
	// the gate granted an attempt that failed (gateAnswered); it clears
	// when the gate queues this Locker or names it.
	rewoken bool
	// rejoin is set while a waiter is due to be woken that way, once the
	// failed attempt's key is off the gate (gateCleaned).
	rejoin bool
	// ownGate counts this Locker's own releases of the key on the gate,
	// cleaning up failed attempts, whose notices are not worth a try: a
	// waiter woken by them would try again at once, be granted the gate
	// again, and go round while another owner holds the other nodes. It
	// clears when the gate queues or names this Locker. A clean-up that
	// named a queued waiter instead of announcing leaves it one too high,
	// which costs at most one gate notice unheard while out of the queue
	// (the waiter's timer covers it).
	ownGate int

	idleSince time.Time // when the last waiter left
}

// waiter is one goroutine waiting in Obtain.
type waiter struct {
	nw   *nameWait
	snap []uint64
	wake chan struct{} // holds one pending wake-up

	ttl     time.Duration // the TTL the waiter asked for
	handoff chan *Lock    // a lock handed over by a holder of this Locker
	taken   bool          // a lock was handed to it (n.mu)
}

func newNotifier(lk *Locker) *notifier {
	return &notifier{lk: lk, stop: make(chan struct{}), names: map[string]*nameWait{},
		turnSuffix: scripts.TurnChannel("", lk.id)}
}

// register puts a waiter in line for key and makes sure the key's channel is
// subscribed on every node that can. It returns nil when no node can
// subscribe (the waiter then polls).
func (n *notifier) register(key string, ttl time.Duration) *waiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return nil
	}
	if !n.started {
		n.start()
	}
	if !n.anySubscriber() {
		return nil
	}
	nw := n.names[key]
	if nw == nil {
		nw = &nameWait{
			key:       key,
			gate:      n.lk.gate(key),
			counts:    make([]uint64, len(n.nodes)),
			confirmed: make([]bool, len(n.nodes)),
			ready:     make(chan struct{}),
		}
		n.names[key] = nw
		for i, ns := range n.nodes {
			if ns != nil {
				channels := n.channels(i, key)
				ns.send(func(s pool.Subscription) error { return s.Subscribe(channels...) })
			}
		}
	}
	w := &waiter{nw: nw, snap: append([]uint64(nil), nw.counts...), wake: make(chan struct{}, 1),
		ttl: ttl, handoff: make(chan *Lock, 1)}
	nw.waiters = append(nw.waiters, w)
	return w
}

// live reports whether a quorum of nodes has confirmed w's subscription, so
// that a release will be heard.
func (n *notifier) live(w *waiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.liveLocked(w.nw)
}

// liveLocked reports whether nw's channel is subscribed on a quorum of
// nodes. A waiter that does not hear the gate misses the releases of locks
// the gate held (the other nodes leave them to it: acquisition.release)
// while the gate is up for their holders, and waits for its timer then
// (SafetyPoll); when the gate is down for them too, the other nodes
// announce. Waiters that are not live poll instead.
func (n *notifier) liveLocked(nw *nameWait) bool {
	c := 0
	for _, ok := range nw.confirmed {
		if ok {
			c++
		}
	}
	return c >= n.lk.quorum
}

// lookup reports whether goroutines of this Locker are in line for key,
// and whether key's channel is subscribed on a quorum of nodes (waiters, or
// a lingering subscription).
func (n *notifier) lookup(key string) (waiting, subscribed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := n.names[key]
	if nw == nil {
		return false, false
	}
	return len(nw.waiters) > 0, n.liveLocked(nw)
}

// handTo hands the lock made by next to the first waiter in line for key
// that has not been handed one, if ok accepts it, and reports whether it did.
// The hand-over happens under n.mu, so a waiter leaving the line either
// never gets the lock or finds it when it leaves.
func (n *notifier) handTo(key string, ok func(*waiter) bool, next func(*waiter) *Lock) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := n.names[key]
	if nw == nil {
		return false
	}
	for _, w := range nw.waiters {
		if w.taken {
			continue
		}
		if !ok(w) {
			return false
		}
		w.taken = true
		w.handoff <- next(w) // room for one, and a waiter is handed at most one
		return true
	}
	return false
}

// unregister takes w out of line; once the last waiter of a key has been
// gone for lingerFor, a sweep unsubscribes the key. A waiter that
// leaves without the lock passes a wake-up it received but did not use to the
// next in line, and returns a lock handed to it too late: the caller must
// release it. leave reports that the last waiter left while this Locker was
// in the gate's turn queue (without the lock, or with one handed over by a
// holder of this Locker): the caller must take it out, or the gate would
// promise a release to nobody.
func (n *notifier) unregister(w *waiter, obtained bool) (orphan *Lock, leave bool) {
	defer func() {
		if !obtained {
			select {
			case orphan = <-w.handoff:
			default:
			}
		}
	}()
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := w.nw
	for i, x := range nw.waiters {
		if x == w {
			nw.waiters = append(nw.waiters[:i], nw.waiters[i+1:]...)
			break
		}
	}
	select {
	case <-w.wake:
		if !obtained {
			n.wakeFirstLocked(nw)
		}
	default:
	}
	if obtained && !w.taken {
		// A grant on the gate took this Locker out of the queue; a lock
		// handed over by a holder of this Locker did not.
		nw.queued = false
	}
	if len(nw.waiters) == 0 && n.names[nw.key] == nw {
		leave, nw.queued, nw.turn = nw.queued, false, false
		nw.joins++ // answers still on their way are stale
		nw.idleSince = n.lk.cfg.clock.Now()
	}
	return nil, leave
}

// sweep unsubscribes the keys that have had no waiter for lingerFor.
func (n *notifier) sweep() {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.lk.cfg.clock.Now()
	for key, nw := range n.names {
		if len(nw.waiters) > 0 || now.Sub(nw.idleSince) < lingerFor {
			continue
		}
		delete(n.names, key)
		for i, ns := range n.nodes {
			if ns != nil {
				channels := n.channels(i, key)
				ns.send(func(s pool.Subscription) error { return s.Unsubscribe(channels...) })
			}
		}
	}
}

// hearsGate reports whether w hears its key's gate's notices, which a
// turn in the gate's queue needs.
func (n *notifier) hearsGate(w *waiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return w.nw.confirmed[w.nw.gate] && w.nw.turnHeard
}

// isQueued reports whether this Locker is in the turn queue of w's key, as
// far as the gate's answers and notices tell.
func (n *notifier) isQueued(w *waiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return w.nw.queued
}

// joining is called before an attempt that asks the gate to queue this
// Locker if refused: it counts as queued from then on (the gate may name it
// before the attempt returns). It returns the attempt's number for
// gateAnswered.
func (n *notifier) joining(w *waiter) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	w.nw.queued = true
	w.nw.joins++
	return w.nw.joins
}

// gateAnswered records the gate's answer to attempt seq, if no later
// attempt asked since: refused, this Locker is in the queue; otherwise it is
// not, and w wakes if the releases announced meanwhile would have woken it.
//
// It also has w try again, once until the Locker is queued or named again,
// when the gate granted the attempt: one that failed elsewhere (another
// owner holds the other nodes) left this Locker out of the queue, and while
// others wait there, no release is announced to it; it tries again as soon
// as its key is off the gate (gateCleaned), and joins. Only once: while
// that owner holds the lock, each try would be granted by the gate again,
// and the waiter then waits for that owner's release. (An attempt that
// succeeded has left the line by then, or leaves it at once.)
func (n *notifier) gateAnswered(w *waiter, seq uint64, refused, granted bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := w.nw
	if seq != nw.joins {
		return
	}
	was := nw.queued
	nw.queued = refused
	if refused {
		// Queued: a turn will name this Locker, and the gate's other
		// notices wake no waiter of it (see noticeLocked).
		nw.rewoken, nw.rejoin, nw.ownGate = false, false, 0
	}
	if was && !refused && granted && !nw.rewoken {
		// Once the attempt's key is off the gate (gateCleaned): tried
		// sooner, the waiter would be refused there by its own key, and
		// named by its own clean-up.
		nw.rejoin = true
	}
	if was && !refused && w.announced() >= n.lk.quorum {
		n.wakeFirstLocked(nw)
	}
}

// gateCleaned is called once this Locker's release of key on its gate,
// cleaning up a failed attempt, was answered: a waiter due to try again to
// join the queue (gateAnswered) does so now.
func (n *notifier) gateCleaned(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nw := n.names[key]; nw != nil && nw.rejoin {
		nw.rejoin, nw.rewoken = false, true
		n.wakeFirstLocked(nw)
	}
}

// rearm is called before each attempt: releases announced from now on count
// toward w's next wake-up; older ones are answered by the attempt itself.
// turn reports that the gate named this Locker since its last attempt.
func (n *notifier) rearm(w *waiter) (turn bool) {
	n.mu.Lock()
	copy(w.snap, w.nw.counts)
	turn, w.nw.turn = w.nw.turn, false
	n.mu.Unlock()
	select {
	case <-w.wake:
	default:
	}
	return turn
}

// awaitReady waits until a quorum of nodes confirmed the subscription of w's
// key, at most d on the Locker's clock.
func (n *notifier) awaitReady(ctx context.Context, w *waiter, d time.Duration) {
	t := n.lk.cfg.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.nw.ready:
	case <-t.C():
	case <-ctx.Done():
	}
}

// released is called when a lock of this Locker was released on a quorum:
// the first local waiter can go at once.
func (n *notifier) released(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nw := n.names[key]; nw != nil {
		n.wakeFirstLocked(nw)
	}
}

// notice records a release announced by node i on channel: a lock's
// channel, or this Locker's turn channel for a lock, on which the lock's
// gate names it (next) as the next in line.
func (n *notifier) notice(i int, channel, next string) {
	if key, unclaimed := n.noticeLocked(i, channel, next); unclaimed {
		n.lk.declineTurn(key)
	}
}

// noticeLocked is notice under n.mu; unclaimed reports a turn given to this
// Locker while none of its goroutines waits for key.
func (n *notifier) noticeLocked(i int, channel, next string) (key string, unclaimed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nw, turn := n.lookupChannel(channel)
	if nw == nil {
		return "", false
	}
	if turn {
		// The gate named this Locker on its own channel.
		if i != nw.gate || next != n.lk.id {
			return "", false
		}
		nw.counts[i]++
		nw.queued, nw.rewoken, nw.rejoin, nw.ownGate = false, false, false, 0
		if len(nw.waiters) == 0 {
			return nw.key, true
		}
		nw.turn = true
		n.wakeFirstLocked(nw)
		return "", false
	}
	nw.counts[i]++
	if i == nw.gate {
		// The gate announces here only a release with nobody queued (it
		// names the next in line on that waiter's own channel): whatever
		// this Locker believed, it is not queued.
		nw.queued = false
	}
	if nw.queued {
		// Our turn will be announced by name.
		return "", false
	}
	gateFreed := i == nw.gate
	if gateFreed && nw.ownGate > 0 {
		nw.ownGate--
		gateFreed = false
	}
	for _, w := range nw.waiters {
		// A contended attempt needs the gate free first: its release
		// alone is worth a try (the others were freed by the same owner,
		// or will be), and a gate that answers late must not leave the
		// waiters asleep until their timer.
		if w.announced() >= n.lk.quorum || (gateFreed && nw.counts[i] > w.snap[i]) {
			n.wakeFirstLocked(nw)
			break
		}
	}
	return "", false
}

// cleaningGate is called before this Locker releases key on its gate to
// clean up a failed attempt (see nameWait.ownGate).
func (n *notifier) cleaningGate(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nw := n.names[key]; nw != nil {
		nw.ownGate++
	}
}

// announced counts the nodes that announced a release since w rearmed.
func (w *waiter) announced() int {
	c := 0
	for i, v := range w.nw.counts {
		if v > w.snap[i] {
			c++
		}
	}
	return c
}

// wakeFirstLocked wakes the first waiter in line; the others need a fresh
// quorum of announcements, so that one release wakes one waiter.
func (n *notifier) wakeFirstLocked(nw *nameWait) {
	for i, w := range nw.waiters {
		if i == 0 {
			select {
			case w.wake <- struct{}{}:
			default:
			}
			continue
		}
		copy(w.snap, nw.counts)
	}
}

// confirm records that node i subscribed (on) or unsubscribed channel: a
// lock's key, or this Locker's turn channel for it.
func (n *notifier) confirm(i int, channel string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	nw, turn := n.lookupChannel(channel)
	if nw == nil {
		return
	}
	deaf := !nw.confirmed[nw.gate] || !nw.turnHeard
	defer func() {
		if deaf && nw.confirmed[nw.gate] && nw.turnHeard && !nw.queued && len(nw.waiters) > 0 {
			// The gate just became audible. A waiter whose attempts were
			// made while it was not could not take a place in the gate's
			// queue, and would hear of no release the gate names another
			// for (the other nodes leave those notices to the gate): it
			// tries again now, and joins the queue.
			n.wakeFirstLocked(nw)
		}
	}()
	if turn {
		nw.turnHeard = on && i == nw.gate
		return
	}
	nw.confirmed[i] = on
	c := 0
	for _, ok := range nw.confirmed {
		if ok {
			c++
		}
	}
	if c >= n.lk.quorum && !nw.isReady {
		nw.isReady = true
		close(nw.ready)
	}
}

// lookupChannel returns the waiting state of the lock whose channel this
// is, and whether it is this Locker's turn channel for the lock (n.mu is
// held).
func (n *notifier) lookupChannel(channel string) (nw *nameWait, turn bool) {
	if nw := n.names[channel]; nw != nil {
		return nw, false
	}
	if key, ok := strings.CutSuffix(channel, n.turnSuffix); ok {
		return n.names[key], true
	}
	return nil, false
}

// channels returns what node i is subscribed to for key: the key's
// channel, and on the key's gate this Locker's turn channel too.
func (n *notifier) channels(i int, key string) []string {
	if i == n.lk.gate(key) {
		return []string{key, scripts.TurnChannel(key, n.lk.id)}
	}
	return []string{key}
}

// disconnected forgets node i's confirmations after its connection broke.
func (n *notifier) disconnected(i int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nw := range n.names {
		nw.confirmed[i] = false
		if i == nw.gate {
			nw.turnHeard = false
		}
	}
}

// waited lists the locks this Locker's goroutines wait for, or waited for
// lately (their subscriptions linger).
func (n *notifier) waited() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	keys := make([]string, 0, len(n.names))
	for k := range n.names {
		keys = append(keys, k)
	}
	return keys
}

// subscriptions lists the channels node i's connection subscribes to.
func (n *notifier) subscriptions(i int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	channels := make([]string, 0, len(n.names))
	for k := range n.names {
		channels = append(channels, n.channels(i, k)...)
	}
	return channels
}

func (n *notifier) anySubscriber() bool {
	for _, ns := range n.nodes {
		if ns != nil {
			return true
		}
	}
	return false
}

// start launches one connection loop per node that can subscribe; n.mu is
// held.
func (n *notifier) start() {
	n.started = true
	n.nodes = make([]*nodeSub, len(n.lk.nodes))
	for i, p := range n.lk.nodes {
		s, ok := p.(pool.Subscriber)
		if !ok {
			continue
		}
		ns := &nodeSub{n: n, node: i, src: s}
		n.nodes[i] = ns
		n.lk.bg.Go(func() error { ns.loop(); return nil })
	}
}

func (n *notifier) isStopped() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stopped
}

// close stops every connection loop; Locker.Close then waits for them.
func (n *notifier) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return
	}
	n.stopped = true
	close(n.stop)
	for _, ns := range n.nodes {
		if ns != nil {
			ns.closeConn()
		}
	}
}

// nodeSub is the Pub/Sub connection to one node, reopened when it breaks.
type nodeSub struct {
	n    *notifier
	node int
	src  pool.Subscriber

	mu   sync.Mutex
	conn pool.Subscription
	last time.Time // when the node last said anything
}

// send runs f on the connection if there is one; a failure closes it and the
// loop reopens it (resubscribing every key).
func (ns *nodeSub) send(f func(pool.Subscription) error) {
	ns.mu.Lock()
	conn := ns.conn
	ns.mu.Unlock()
	if conn != nil && f(conn) != nil {
		_ = conn.Close()
	}
}

func (ns *nodeSub) closeConn() {
	ns.mu.Lock()
	if ns.conn != nil {
		_ = ns.conn.Close()
	}
	ns.mu.Unlock()
}

func (ns *nodeSub) loop() {
	c := ns.n.lk.cfg.clock
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ns.n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for retry := 0; ; retry++ {
		// ctx ends a moment after close: a connection closed by close
		// must not be reopened meanwhile.
		if ctx.Err() != nil || ns.n.isStopped() {
			return
		}
		conn, err := ns.src.Subscribe(ctx)
		if err != nil {
			wait := min(time.Duration(1<<min(retry, 10))*10*time.Millisecond, 5*time.Second)
			if clock.Sleep(ctx, c, wait) != nil {
				return
			}
			continue
		}
		retry = 0
		ns.mu.Lock()
		ns.conn, ns.last = conn, c.Now()
		ns.mu.Unlock()
		if ctx.Err() != nil || ns.n.isStopped() { // closed while connecting
			_ = conn.Close()
			return
		}
		if channels := ns.n.subscriptions(ns.node); len(channels) > 0 {
			if conn.Subscribe(channels...) != nil {
				_ = conn.Close()
			}
		}
		ping := ns.watch(conn)
		ns.receive(conn)
		ping.Stop()
		_ = conn.Close()
		ns.mu.Lock()
		ns.conn = nil
		ns.mu.Unlock()
		ns.n.disconnected(ns.node)
	}
}

// watch pings conn every pingEvery and closes it when the node has been
// silent for three intervals: a hung or cut-off node.
func (ns *nodeSub) watch(conn pool.Subscription) clock.Timer {
	c := ns.n.lk.cfg.clock
	var mu sync.Mutex
	var t clock.Timer
	var tick func()
	tick = func() {
		ns.mu.Lock()
		silent := c.Since(ns.last)
		ns.mu.Unlock()
		if silent > 3*pingEvery || conn.Ping() != nil {
			_ = conn.Close()
			return
		}
		ns.n.sweep()
		mu.Lock()
		t = c.AfterFunc(pingEvery, tick)
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	t = c.AfterFunc(pingEvery, tick)
	return stopper(func() bool {
		mu.Lock()
		defer mu.Unlock()
		return t.Stop()
	})
}

func (ns *nodeSub) receive(conn pool.Subscription) {
	c := ns.n.lk.cfg.clock
	for {
		ev, err := conn.Receive(0)
		if err != nil {
			return
		}
		ns.mu.Lock()
		ns.last = c.Now()
		ns.mu.Unlock()
		switch ev.Kind {
		case pool.EventMessage:
			ns.n.notice(ns.node, ev.Channel, ev.Data)
		case pool.EventSubscribed:
			ns.n.confirm(ns.node, ev.Channel, true)
		case pool.EventUnsubscribed:
			ns.n.confirm(ns.node, ev.Channel, false)
		}
	}
}

// stopper adapts a stop function to clock.Timer.
type stopper func() bool

func (s stopper) C() <-chan time.Time { return nil }
func (s stopper) Stop() bool          { return s() }
