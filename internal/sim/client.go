package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/quorumlock/quorumlock/internal/history"
	"github.com/quorumlock/quorumlock/redlock"
)

// client is one client process: its own Locker, contending with the others
// for the scenario's lock names and writing to the shared store while it
// holds one.
type client struct {
	w    *world
	name string
	lk   *redlock.Locker
	rng  *rng
	seq  int
}

// plan is everything one round of a client's loop will do, drawn in full
// before the round starts so that how a round turns out never shifts what
// the following rounds draw.
type plan struct {
	think     time.Duration
	name      string
	ttl       time.Duration
	crash     bool
	crashDown time.Duration
	keepAlive bool
	maxHold   time.Duration
	pause     time.Duration // 0: no pause
	writes    int
	steps     []time.Duration
	extend    []bool
}

func (c *client) draw() plan {
	sc, cl := c.w.sc, c.w.sc.Client
	p := plan{
		think:     c.rng.dur(cl.Think),
		name:      fmt.Sprintf("lock%d", c.rng.intn(1, max(sc.Names, 1))),
		ttl:       c.rng.dur(sc.TTL).Truncate(time.Millisecond),
		crash:     c.rng.chance(cl.CrashP),
		crashDown: c.rng.dur(cl.CrashDown),
		keepAlive: c.rng.chance(cl.KeepAliveP),
	}
	p.maxHold = time.Duration(c.rng.float(0.5, 3) * float64(p.ttl))
	long := c.rng.intn(cl.KeepAliveWrites[0], cl.KeepAliveWrites[1])
	p.writes = c.rng.intn(cl.Writes[0], cl.Writes[1])
	if p.keepAlive {
		p.writes = long
	}
	n := max(cl.Writes[1], cl.KeepAliveWrites[1])
	p.steps, p.extend = make([]time.Duration, n), make([]bool, n)
	if c.rng.chance(cl.PauseP) {
		p.pause = c.rng.dur(cl.Pause)
	} else {
		_ = c.rng.dur(cl.Pause)
	}
	for i := range p.steps {
		p.steps[i] = c.rng.dur(cl.Step)
		p.extend[i] = c.rng.chance(cl.ExtendP)
	}
	return p
}

// run loops until ctx ends: think, obtain, hold.
func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		p := c.draw()
		if c.w.sleep(ctx, p.think) != nil {
			return
		}
		l, err := c.lk.Obtain(ctx, p.name, p.ttl)
		if err != nil {
			c.w.stats.failed.Add(1)
			continue
		}
		c.w.stats.obtained.Add(1)
		c.hold(ctx, l, p)
	}
}

// hold is one critical section, recorded as a history.Section: from
// Obtain's return until the holder stopped acting and released.
func (c *client) hold(ctx context.Context, l *redlock.Lock, p plan) {
	w, reckless := c.w, c.w.sc.Client.Reckless
	c.seq++
	id := fmt.Sprintf("%s#%d", c.name, c.seq)
	sec := history.Section{Holder: id, Name: l.Name(), Acquired: w.clock.Now(), Fence: fenceOf(l)}
	if p.crash {
		// The process dies holding the lock: it never releases, and what
		// it did ended with its validity at the latest.
		w.stats.clientCrashes.Add(1)
		sec.ValidUntil = l.ValidUntil()
		w.rec.Add(sec)
		_ = w.sleep(ctx, p.crashDown)
		return
	}
	if p.pause > 0 {
		w.stats.pauses.Add(1)
		if w.sleep(ctx, p.pause) != nil {
			// The run ended while the holder was stopped: it never resumed
			// and never released.
			sec.ValidUntil = l.ValidUntil()
			w.rec.Add(sec)
			return
		}
	}
	if p.keepAlive && !reckless {
		c.keepAlive(ctx, l, sec, p)
		return
	}
	for i := 0; i < p.writes; i++ {
		if i > 0 && w.sleep(ctx, p.steps[i]) != nil {
			break
		}
		if !reckless {
			if p.extend[i] && l.TTL() > 0 && l.TTL() < p.ttl/2 {
				if l.Extend(ctx, p.ttl) == nil {
					w.stats.extended.Add(1)
				}
			}
			if l.TTL() <= 0 {
				break // a careful holder stops once its lock may have lapsed
			}
		}
		if !w.store.write(sec.Name, id, sec.Fence) {
			break // the store refused a stale token: this holder has lost the lock
		}
	}
	sec.ValidUntil, sec.Released = l.ValidUntil(), w.clock.Now()
	if !reckless && sec.Released.After(sec.ValidUntil) {
		// It noticed late, but did nothing after its validity.
		sec.Released = sec.ValidUntil
	}
	w.rec.Add(sec)
	if l.Release(ctx) == nil {
		w.stats.released.Add(1)
	}
}

// keepAlive is the rest of a section whose lock is renewed in the
// background: the holder acts while the lock's Context is live, trusting it
// to end before the validity does, as Locker.Do's callers must. Renewal
// stops after maxHold, and the holder keeps the lock until it ends.
//
// It never calls Release on a kept-alive lock. Release holds the Lock's
// mutex for a whole round trip, and the renewer finishing a round (or the
// expiry timer) then waits on that mutex; a goroutine waiting on a mutex is
// not durably blocked, so synctest.Wait, and the run, would never return.
// The keys expire by themselves once renewal stops.
func (c *client) keepAlive(ctx context.Context, l *redlock.Lock, sec history.Section, p plan) {
	w := c.w
	if err := l.KeepAlive(redlock.WithMaxHold(p.maxHold)); err != nil {
		// The validity ran out during a pause: like Locker.Do, give up
		// before acting. No renewer touches the lock, so it can be released.
		sec.ValidUntil, sec.Released = l.ValidUntil(), l.ValidUntil()
		w.rec.Add(sec)
		_ = l.Release(ctx)
		return
	}
	w.stats.keptAlive.Add(1)
	lctx, cancel := l.Context(ctx)
	defer cancel()
	var last time.Time
	for i := 0; i < p.writes; i++ {
		if i > 0 && w.sleep(lctx, p.steps[i]) != nil {
			break // woken when the context ended: it stops acting now
		}
		if lctx.Err() != nil {
			break
		}
		w.store.write(sec.Name, sec.Holder, sec.Fence)
		last = w.clock.Now()
	}
	select {
	case <-lctx.Done():
	case <-w.done:
	}
	// It held the lock until the lock ended (or the run did), and acted
	// until its last write, which must not be after the validity.
	sec.ValidUntil = l.ValidUntil()
	sec.Released = w.clock.Now()
	if sec.Released.After(sec.ValidUntil) {
		sec.Released = sec.ValidUntil
	}
	if last.After(sec.Released) {
		sec.Released = last
	}
	w.rec.Add(sec)
}

// fencer is implemented by a Lock that carries a fencing token.
type fencer interface{ Fence() uint64 }

// fenceOf returns the lock's fencing token, or 0 when the Lock has none.
func fenceOf(l *redlock.Lock) uint64 {
	if f, ok := any(l).(fencer); ok {
		return f.Fence()
	}
	return 0
}

// FencingAvailable reports whether redlock.Lock carries a fencing token
// (a Fence() uint64 method) that runs record and check.
func FencingAvailable() bool {
	_, ok := any((*redlock.Lock)(nil)).(fencer)
	return ok
}
