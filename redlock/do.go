package redlock

import (
	"context"
	"errors"
	"time"
)

// Do obtains the lock called name (as Obtain does, so it waits while another
// owner holds it), runs fn while keeping the lock alive (KeepAlive, with
// opts), and releases it when fn returns or panics.
//
// fn's context is cancelled when ctx ends or the lock is lost, with a cause
// matching ErrLost in the latter case (context.Cause), and its Deadline is
// never later than the lock's current validity. fn must stop acting on the
// protected resource once its context is done.
//
// Do returns the error of Obtain if the lock could not be obtained. Otherwise
// it returns fn's error, joined with the loss (matching ErrLost) if the lock
// was lost while fn ran; and when fn succeeded on a lock never lost, the
// error of the final Release, if any.
func (lk *Locker) Do(ctx context.Context, name string, ttl time.Duration, fn func(ctx context.Context) error, opts ...KeepAliveOption) (err error) {
	l, err := lk.Obtain(ctx, name, ttl)
	if err != nil {
		return err
	}
	defer func() {
		lost := l.Err() // before Release: nil unless lost
		rerr := l.Release(context.WithoutCancel(ctx))
		switch {
		case lost != nil:
			err = errors.Join(err, lost)
		case err == nil:
			err = rerr
		}
	}()
	if err := l.KeepAlive(opts...); err != nil {
		return err
	}
	fctx, cancel := l.Context(ctx)
	defer cancel()
	return fn(fctx)
}
