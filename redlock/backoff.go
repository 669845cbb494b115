package redlock

import (
	"math/rand/v2"
	"time"
)

// Backoff decides how long Obtain waits after a failed attempt, and when it
// gives up. Implementations must be safe for concurrent use; the ones in this
// package are stateless.
type Backoff interface {
	// Next returns the wait after the given number of failed attempts
	// (1 after the first), and false to stop retrying.
	Next(failures int) (time.Duration, bool)
}

// BackoffFunc adapts a function to Backoff.
type BackoffFunc func(failures int) (time.Duration, bool)

// Next calls f.
func (f BackoffFunc) Next(failures int) (time.Duration, bool) { return f(failures) }

// NoRetry makes Obtain give up after one attempt, as TryObtain does.
func NoRetry() Backoff {
	return BackoffFunc(func(int) (time.Duration, bool) { return 0, false })
}

// ConstantBackoff waits d between attempts, forever.
func ConstantBackoff(d time.Duration) Backoff {
	return BackoffFunc(func(int) (time.Duration, bool) { return d, true })
}

// RandomBackoff waits a uniformly random time in [lo, hi] between attempts,
// forever (redsync's and redlock-py's way).
func RandomBackoff(lo, hi time.Duration) Backoff {
	return BackoffFunc(func(int) (time.Duration, bool) { return between(lo, hi), true })
}

// ExponentialBackoff waits a random time between lo and lo*2^(failures-1)
// (capped at hi): "full jitter", which spreads contenders apart as they keep
// failing. It retries forever.
func ExponentialBackoff(lo, hi time.Duration) Backoff {
	return BackoffFunc(func(failures int) (time.Duration, bool) {
		ceil := lo
		for i := 1; i < failures && ceil < hi; i++ {
			ceil *= 2
		}
		return between(lo, min(ceil, hi)), true
	})
}

// LimitAttempts stops b after n attempts in all (n-1 retries).
func LimitAttempts(b Backoff, n int) Backoff {
	return BackoffFunc(func(failures int) (time.Duration, bool) {
		if failures >= n {
			return 0, false
		}
		return b.Next(failures)
	})
}

func between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}
