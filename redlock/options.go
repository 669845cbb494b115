package redlock

import (
	"log/slog"
	"strings"
	"time"

	"github.com/quorumlock/quorumlock/clock"
)

// DefaultDriftFactor is the share of the TTL assumed lost to clock drift
// between the client and the nodes.
const DefaultDriftFactor = 0.01

// DefaultKeyPrefix is prepended to every lock name to form its Redis key.
const DefaultKeyPrefix = "quorumlock:"

// MinTTL is the smallest TTL accepted: Redis expires keys with millisecond
// resolution, and the drift allowance alone is 2ms.
const MinTTL = 10 * time.Millisecond

// driftFloor is added to every drift allowance for the resolution of Redis's
// expiry (1ms) and of the node's clock.
const driftFloor = 2 * time.Millisecond

// Option configures a Locker.
type Option func(*config)

type config struct {
	clock          clock.Clock
	driftFactor    float64
	backoff        Backoff
	nodeTimeout    time.Duration // lower bound of the per-node timeout (0: from the TTL)
	maxNodeTimeout time.Duration // upper bound (0: the validity budget)
	prefix         string
	fencing        bool

	quarantine     time.Duration
	noRestartGuard bool
	noClockGuard   bool
	logger         *slog.Logger
	observer       func(Event)
	noHandoff      bool
}

func defaultConfig() config {
	return config{
		clock:       clock.Real{},
		driftFactor: DefaultDriftFactor,
		prefix:      DefaultKeyPrefix,
	}
}

// WithDriftFactor sets the share of the TTL subtracted from every lock's
// validity for clock drift between client and nodes (default 0.01, range
// [0, 0.5)). A further 2ms is always subtracted.
func WithDriftFactor(f float64) Option { return func(c *config) { c.driftFactor = f } }

// WithClock sets the clock used for every duration (default clock.Real).
// Tests and simulations pass a *clock.Fake.
func WithClock(cl clock.Clock) Option { return func(c *config) { c.clock = cl } }

// WithBackoff sets how Obtain waits between attempts. A wait is always cut
// short by a release notice or by the holder's remaining TTL on a quorum.
//
// By default Obtain relies on release notices: while a quorum of nodes
// delivers them it polls only as a safety net (every SafetyPoll), and
// otherwise it backs off as ExponentialBackoff(2ms, 256ms).
func WithBackoff(b Backoff) Option { return func(c *config) { c.backoff = b } }

// SafetyPoll is how often a waiter that hears release notices retries
// anyway, with the default backoff, in case a notice was lost.
const SafetyPoll = time.Second

// fallbackBackoff is the default backoff while release notices are not
// available.
var fallbackBackoff = ExponentialBackoff(2*time.Millisecond, 256*time.Millisecond)

// WithNodeTimeout fixes how long a round waits for each node's answer. By
// default the timeout adapts to the nodes (see WithNodeTimeoutBounds). A slow
// node does not slow a round whose quorum answered: the round is decided
// without it.
func WithNodeTimeout(d time.Duration) Option {
	return func(c *config) { c.nodeTimeout, c.maxNodeTimeout = d, d }
}

// WithNodeTimeoutBounds lets the per-node timeout adapt to the nodes'
// observed latency within [lo, hi]: it is lo, or four times the average
// latency of the slowest node when that is more, so that a node whose
// answers grow slower is not failed by a timeout made for faster ones, and a
// hung node still never holds a call past hi or the caller's context.
// Latency is learnt from answers that came within the timeout (a node always
// slower than lo is never heard: raise lo for it). It is never more than the
// TTL minus the drift allowance. The default lo is a tenth of the TTL,
// between 100ms and 1s; the default hi is the TTL minus the drift allowance.
func WithNodeTimeoutBounds(lo, hi time.Duration) Option {
	return func(c *config) { c.nodeTimeout, c.maxNodeTimeout = lo, hi }
}

// WithKeyPrefix sets the prefix of every lock's Redis key (default
// "quorumlock:"). All Lockers sharing a lock must use the same prefix.
func WithKeyPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithFencing makes every lock carry a fencing token (Lock.Fence): a number
// that is larger for each later holder of any lock of this prefix, so that a
// storage can refuse the writes of a holder whose lock has expired (a paused
// or partitioned client) once it has seen a newer token.
//
// Each node keeps one counter for the prefix; a grant increments it. The
// token is the largest counter among the nodes that granted the lock; when
// they disagree, it is first written to a quorum of nodes still holding the
// lock (one more round trip) before Obtain returns. Any later quorum shares a
// node with this one, whose counter is already at least the token, so the
// later token is larger. A node that restarts without persistence loses its
// counter, however long it stays down, and a later quorum may meet only such
// nodes: fencing needs nodes that keep every write (AOF with appendfsync
// always).
func WithFencing() Option { return func(c *config) { c.fencing = true } }

// WithQuarantine sets how long a node's yes-votes are not counted after it
// lost its data or its clock jumped. It must be at least the largest TTL any
// client uses for these locks. By default it is the largest TTL this Locker
// has used.
func WithQuarantine(d time.Duration) Option { return func(c *config) { c.quarantine = d } }

// WithoutRestartQuarantine turns off restart quarantine. Every acquire reply
// carries the age of a marker key that a node loses with its data; by default
// a node that lost its data less than the quarantine period ago, while most
// nodes did not, has its yes-votes discarded, because the locks it forgot are
// still held on the other nodes. Turn it off only for nodes that keep every
// write (AOF with appendfsync always).
func WithoutRestartQuarantine() Option { return func(c *config) { c.noRestartGuard = true } }

// WithoutClockJumpDetection turns off clock-jump detection. By default every
// acquire reply carries the node's clock (the age of its boot marker, by the
// node's clock), and a node whose clock moves
// against the client's monotonic clock by more than the drift allowance (a
// jump, which expires its keys early or late) has its yes-votes discarded for
// the quarantine period.
func WithoutClockJumpDetection() Option { return func(c *config) { c.noClockGuard = true } }

// WithLogger logs what an operator must know (quarantined nodes, clock
// jumps, lost locks) at Warn, and node errors and discarded votes at Debug.
// With a logger, the Locker also checks its nodes once, in the background, at
// its first use, and logs every finding of Check (a server listed twice, a
// replica, an evicting memory policy...) once.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithObserver calls f for every Event (obtain, failure, node error,
// discarded vote, quarantine, clock jump, extension, loss, release), for
// metrics. f is called synchronously and must be fast and safe for
// concurrent use.
func WithObserver(f func(Event)) Option { return func(c *config) { c.observer = f } }

// WithoutLocalHandoff makes Release always release the lock on the nodes.
// By default, when another goroutine of the same Locker waits for the same
// lock, Release hands the lock to it directly (the first in line), without a
// round trip: the keys stay on the nodes and the new owner inherits the
// remaining validity, which is at least half the TTL it asked for. Handoffs
// stop LocalHandoffWindow after the nodes granted the lock, so that other
// processes get their turn; they never happen with fencing.
func WithoutLocalHandoff() Option { return func(c *config) { c.noHandoff = true } }

func (c *config) validate() error {
	switch {
	case c.clock == nil:
		return invalidf("nil clock")
	case !(c.driftFactor >= 0 && c.driftFactor < 0.5):
		return invalidf("drift factor %v out of range [0, 0.5)", c.driftFactor)
	case c.nodeTimeout < 0 || c.maxNodeTimeout < 0:
		return invalidf("negative node timeout")
	case c.maxNodeTimeout != 0 && c.maxNodeTimeout < c.nodeTimeout:
		return invalidf("node timeout bounds [%v, %v] are reversed", c.nodeTimeout, c.maxNodeTimeout)
	case c.quarantine < 0:
		return invalidf("negative quarantine %v", c.quarantine)
	case strings.HasPrefix(c.prefix, reserved):
		return invalidf("key prefix must not start with a NUL byte")
	}
	return nil
}

// reserved starts the names of keys that are not locks (the fence counter);
// lock names and prefixes must not start with it.
const reserved = "\x00"

// fenceKey is the node's fence counter for the prefix. It never starts with
// the prefix, so a lock name cannot collide with it and a reset of every key
// under the prefix leaves it alone.
func (c *config) fenceKey() string { return reserved + "fence:" + c.prefix }

// markerKey is the node's boot marker for the prefix (see scripts.Acquire);
// a Locker keeps it in Locker.marker.
func (c *config) markerKey() string { return reserved + "boot:" + c.prefix }

// drift returns the allowance subtracted from a TTL for clock drift.
func (c *config) drift(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl)*c.driftFactor) + driftFloor
}

// timeoutFor returns the per-node timeout of a round for a lock of this TTL,
// given the slowest node's average latency.
func (c *config) timeoutFor(ttl, slowest time.Duration) time.Duration {
	budget := ttl - c.drift(ttl)
	lo, hi := c.nodeTimeout, c.maxNodeTimeout
	if lo == 0 {
		lo = min(max(ttl/10, 100*time.Millisecond), time.Second)
	}
	if hi == 0 {
		hi = budget
	}
	// Waiting past the validity budget is pointless: no validity would be
	// left.
	return min(max(lo, min(4*slowest, hi)), budget)
}

// timeoutFor is the per-node timeout of a round, adapted to the nodes seen.
func (lk *Locker) timeoutFor(ttl time.Duration) time.Duration {
	return lk.cfg.timeoutFor(ttl, lk.guard.slowest())
}
