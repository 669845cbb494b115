package redlock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrLost is matched by the cause of a lock's end when it was lost rather
// than released: its validity ran out, a renewal failed to reach a quorum, or
// a KeepAlive limit stopped renewing it.
var ErrLost = errors.New("lock lost")

// ErrReleased is the cause of a lock's end after Release.
var ErrReleased = errors.New("lock released")

// releasedError is the cause recorded when a lock is released: its message
// is only formatted if someone reads it, not on every Release.
type releasedError struct {
	name   string
	handed bool // handed over to a waiter of the same Locker
}

func (e *releasedError) Error() string {
	msg := "redlock: lock " + strconv.Quote(e.name) + ": " + ErrReleased.Error()
	if e.handed {
		msg += " (handed over)"
	}
	return msg
}

func (e *releasedError) Unwrap() error { return ErrReleased }

// Done returns a channel closed when the lock ends: released, or lost (its
// validity ran out, or automatic renewal failed). Err then says which.
func (l *Lock) Done() <-chan struct{} {
	done, _ := l.state()
	return done
}

// Err returns nil while the lock is held, and after Done is closed an error
// matching ErrReleased or ErrLost (with the reason).
func (l *Lock) Err() error {
	_, cause := l.state()
	return cause
}

// state returns the lock's done channel and cause, ending the lock first if
// its validity has elapsed.
func (l *Lock) state() (<-chan struct{}, error) {
	l.mu.Lock()
	l.watchLocked()
	if l.settleLocked() {
		l.mu.Unlock()
		l.expire()
		l.mu.Lock()
	}
	defer l.mu.Unlock()
	return l.done, l.cause
}

// Context returns a context derived from parent that is cancelled when the
// lock ends, with the lock's Err as its cause (context.Cause), and whose
// Deadline is never later than the lock's validity: it moves forward after
// each successful Extend. Call cancel when done with it.
func (l *Lock) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(&lockContext{Context: parent, l: l})
	stop := l.onEnd(func(cause error) { cancel(cause) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

// lockContext gives a context the lock's validity as its deadline.
type lockContext struct {
	context.Context
	l *Lock
}

func (c *lockContext) Deadline() (time.Time, bool) {
	d := c.l.ValidUntil()
	if pd, ok := c.Context.Deadline(); ok && pd.Before(d) {
		return pd, true
	}
	return d, true
}

// onEnd registers f to run once when the lock ends (at once if it has). The
// returned function unregisters it.
func (l *Lock) onEnd(f func(cause error)) (stop func()) {
	if _, cause := l.state(); cause != nil {
		f(cause)
		return func() {}
	}
	l.mu.Lock()
	if l.cause != nil { // ended meanwhile
		cause := l.cause
		l.mu.Unlock()
		f(cause)
		return func() {}
	}
	if l.callbacks == nil {
		l.callbacks = map[int]func(error){}
	}
	id := l.nextCallback
	l.nextCallback++
	l.callbacks[id] = f
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.callbacks, id)
		l.mu.Unlock()
	}
}

// watchLocked makes sure the lock's end is tracked: the done channel exists
// and a timer fires when the validity runs out. l.mu is held.
func (l *Lock) watchLocked() {
	if l.done != nil {
		return
	}
	l.done = make(chan struct{})
	if l.cause != nil {
		close(l.done)
		return
	}
	l.armExpiryLocked()
}

// settleLocked ends the lock at once if its validity has elapsed, rather than
// when the expiry timer's goroutine gets to run: a holder that was paused
// must not be told it still holds the lock. l.mu is held; it reports whether
// the caller must run l.expire.
func (l *Lock) settleLocked() bool {
	return l.cause == nil && !l.lk.cfg.clock.Now().Before(l.validUntil)
}

// armExpiryLocked (re)starts the timer that ends the lock when its validity
// runs out. It does not depend on the renewer: a starved or stuck renewer
// cannot keep a lock alive past its validity. l.mu is held.
func (l *Lock) armExpiryLocked() {
	if l.done == nil || l.cause != nil {
		return
	}
	if l.expiry != nil {
		l.expiry.Stop()
	}
	c := l.lk.cfg.clock
	l.expiry = c.AfterFunc(l.validUntil.Sub(c.Now()), l.expire)
}

func (l *Lock) expire() {
	l.mu.Lock()
	if l.cause != nil {
		l.mu.Unlock()
		return
	}
	now := l.lk.cfg.clock.Now()
	if now.Before(l.validUntil) { // extended meanwhile
		l.armExpiryLocked()
		l.mu.Unlock()
		return
	}
	reason := l.stopReason
	if reason == "" {
		reason = "validity elapsed"
	}
	l.endLocked(fmt.Errorf("redlock: lock %q: %w: %s", l.name, ErrLost, reason))
}

// end records why the lock ended and tells everyone waiting on it.
func (l *Lock) end(cause error) {
	l.mu.Lock()
	l.endLocked(cause)
}

// endLocked is end with l.mu held; it unlocks l.mu.
func (l *Lock) endLocked(cause error) {
	if l.cause != nil {
		l.mu.Unlock()
		return
	}
	l.cause = cause
	if l.done != nil {
		close(l.done)
	}
	if l.expiry != nil {
		l.expiry.Stop()
	}
	callbacks := l.callbacks
	l.callbacks = nil
	l.mu.Unlock()
	if errors.Is(cause, ErrLost) {
		l.lk.emit(Event{Kind: EventLost, Name: l.name, Err: cause})
	}
	for _, f := range callbacks {
		f(cause)
	}
}
