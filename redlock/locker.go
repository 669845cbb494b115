package redlock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/quorumlock/quorumlock/internal/quorum"
	"github.com/quorumlock/quorumlock/pool"
)

// Locker obtains locks on a quorum of independent Redis nodes.
//
// A Locker is safe for concurrent use by any number of goroutines; share one
// per process and set of nodes. It does not own the pools: close them after
// Close.
type Locker struct {
	nodes  []pool.Pool
	quorum int
	cfg    config

	// bg tracks every goroutine a round starts, including stragglers still
	// answering after their round was decided, so Close can wait for them.
	bg errgroup.Group

	notify *notifier
	renew  *renewer
	guard  *guard

	// gates lists the node indexes by address, for picking a contended
	// attempt's gate; hot records the locks recently found contended.
	gates []int
	hot   hotKeys
	// id names this Locker in the locks' turn queues (gate.go).
	id string
	// marker is the key of the nodes' boot marker (cfg.markerKey).
	marker string
	// idArgs are id and the turn queue's TTL in milliseconds, boxed once
	// as the gate's script arguments.
	idArgs [2]any
	// silent pauses the nodes that recently timed out (silence.go); lags
	// marks those answering far behind the others (lag.go).
	silent []silence
	lags   []lag
	// owed holds, per node, the releases that did not reach it (owed.go).
	owed []owed
	// releasing remembers the releases still on their way (releasing.go).
	releasing    *releasing
	spareLagging func(i int) error

	// stop ends background work (the first-use node check) at Close.
	stop    context.Context
	stopAll context.CancelFunc
	checked sync.Once

	mu     sync.RWMutex
	closed bool
}

// New returns a Locker over nodes, which must be independent Redis masters
// (not replicas of each other). A quorum is len(nodes)/2+1.
//
// It fails with an error matching ErrInvalid when nodes is empty, contains a
// nil pool, lists the same address twice (one server must never be counted as
// two votes), or an option is out of range. New does not contact the nodes.
func New(nodes []pool.Pool, opts ...Option) (*Locker, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, invalidf("no nodes")
	}
	seen := make(map[string]int, len(nodes))
	for i, p := range nodes {
		if p == nil || isNilPointer(p) {
			return nil, invalidf("node %d is nil", i)
		}
		addr := strings.ToLower(p.Addr())
		if j, dup := seen[addr]; dup {
			return nil, invalidf("nodes %d and %d are the same address %s", j, i, p.Addr())
		}
		seen[addr] = i
	}
	lk := &Locker{
		nodes:  append([]pool.Pool(nil), nodes...),
		quorum: quorum.Of(len(nodes)),
		cfg:    cfg,
	}
	lk.gates = gateOrder(lk.Nodes())
	lk.id = newToken()[:16]
	lk.marker = cfg.markerKey()
	lk.idArgs = [2]any{lk.id, strconv.FormatInt(queueTTL.Milliseconds(), 10)}
	lk.silent = make([]silence, len(nodes))
	lk.lags = make([]lag, len(nodes))
	lk.owed = make([]owed, len(nodes))
	lk.releasing = newReleasing()
	lk.spareLagging = lk.newSpareLagging()
	lk.notify = newNotifier(lk)
	lk.guard = newGuard(lk)
	lk.stop, lk.stopAll = context.WithCancel(context.Background())
	lk.renew = newRenewer(lk)
	return lk, nil
}

// isNilPointer reports a typed nil, such as a nil *pool.Redigo in the
// interface: calling it would panic.
func isNilPointer(p pool.Pool) bool {
	v := reflect.ValueOf(p)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// checkOnce runs Check once, in the background, at the Locker's first use
// when it has a logger, and logs what it finds (see NodeReport.Log): a node
// setup that silently breaks the quorum is reported without anyone asking.
func (lk *Locker) checkOnce() {
	if lk.cfg.logger == nil {
		return
	}
	lk.checked.Do(func() {
		lk.mu.RLock()
		defer lk.mu.RUnlock()
		if lk.closed {
			return
		}
		lk.bg.Go(func() error {
			if rep, _ := lk.Check(lk.stop); rep != nil {
				rep.Log(lk.stop, lk.cfg.logger)
			}
			return nil
		})
	})
}

// Quorum returns how many nodes must agree for a lock to be held.
func (lk *Locker) Quorum() int { return lk.quorum }

// Nodes returns the nodes' addresses, in the order given to New.
func (lk *Locker) Nodes() []string {
	addrs := make([]string, len(lk.nodes))
	for i, p := range lk.nodes {
		addrs[i] = p.Addr()
	}
	return addrs
}

// Close takes the Locker out of the turn queues of the locks it waited for
// (see Obtain), then waits for every background call (stragglers of decided
// rounds, releases of failed attempts) to finish; each is bounded by its
// round's node timeout. Locks still held stay held until they expire or are
// released.
// After Close every method of the Locker and of its Locks returns ErrClosed:
// release locks before closing.
func (lk *Locker) Close() error {
	lk.leaveAll()
	lk.mu.Lock()
	lk.closed = true
	lk.mu.Unlock()
	lk.forgetOwed()
	lk.stopAll()
	lk.notify.close()
	lk.renew.close()
	return lk.bg.Wait()
}

func (lk *Locker) key(name string) string { return lk.cfg.prefix + name }

// queueKey returns the key of the turn queue of the lock key (gate.go).
func (lk *Locker) queueKey(key string) string { return reserved + "turn:" + key }

// checkTTL validates a TTL and truncates it to whole milliseconds, the
// resolution of PX and PEXPIRE, so that validity is never computed from more
// time than the nodes were given.
func (lk *Locker) checkTTL(ttl time.Duration) (time.Duration, error) {
	ttl = ttl.Truncate(time.Millisecond)
	if ttl < MinTTL {
		return 0, invalidf("ttl %v is below the minimum of %v", ttl, MinTTL)
	}
	if ttl <= lk.cfg.drift(ttl) {
		return 0, invalidf("ttl %v leaves no validity after the drift allowance %v", ttl, lk.cfg.drift(ttl))
	}
	return ttl, nil
}

func checkName(name string) error {
	if name == "" {
		return invalidf("empty lock name")
	}
	if strings.HasPrefix(name, reserved) {
		return invalidf("lock names must not start with a NUL byte")
	}
	return nil
}

// newToken returns 128 random bits, hex-encoded: the value only this owner
// knows, checked by release and extend.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it aborts the process instead
	return hex.EncodeToString(b[:])
}

func (lk *Locker) String() string {
	return fmt.Sprintf("redlock.Locker(%d nodes, quorum %d)", len(lk.nodes), lk.quorum)
}
