package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"github.com/quorumlock/quorumlock/pool"
)

// Persistence is what a node writes to disk, and so what it remembers after a
// restart.
type Persistence int

const (
	// NoPersistence writes nothing: a restarted node comes back empty, having
	// forgotten every lock it granted.
	NoPersistence Persistence = iota
	// Snapshot writes an RDB snapshot on a graceful shutdown (Stop): Stop
	// then Start keeps the keys, Kill loses them.
	Snapshot
	// AOFAlways appends every write to a log and fsyncs it before replying
	// (appendonly yes, appendfsync always): even Kill loses no
	// acknowledged lock.
	AOFAlways
)

// String names the persistence for messages.
func (p Persistence) String() string {
	switch p {
	case NoPersistence:
		return "no persistence"
	case Snapshot:
		return "RDB snapshot on shutdown"
	case AOFAlways:
		return "AOF, appendfsync always"
	}
	return "Persistence(" + strconv.Itoa(int(p)) + ")"
}

// args returns redis-server's arguments for this persistence.
func (p Persistence) args() []string {
	switch p {
	case Snapshot:
		// A save point that never fires in a test; its presence is what
		// makes Redis save on SIGTERM.
		return []string{"--save", "3600 1", "--appendonly", "no"}
	case AOFAlways:
		return []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always"}
	}
	return []string{"--save", "", "--appendonly", "no"}
}

// redisPort is the port Redis listens on inside its container.
const redisPort = "6379/tcp"

// readyTimeout bounds how long a node may take to answer PING after a start.
const readyTimeout = 30 * time.Second

// Node is one Redis container, published on a port of 127.0.0.1 chosen at
// creation and kept across restarts, with a Proxy in front of it. Clients
// dial Addr (the proxy); the harness reaches Redis itself through Do, which
// no network fault touches. A Node's methods are safe for concurrent use but
// faults are meant to be injected from one goroutine.
type Node struct {
	// Index is the node's position in its cluster, from 0.
	Index int

	d           *Docker
	name        string
	id          string
	direct      string // 127.0.0.1:port published by Docker
	proxy       *Proxy
	persistence Persistence

	mu     sync.Mutex
	paused bool
}

// startNode creates and starts a container and waits until Redis answers.
func (d *Docker) startNode(ctx context.Context, index int, persistence Persistence) (*Node, error) {
	cmd := append([]string{
		"redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--daemonize", "no",
		"--dir", "/data", "--port", "6379", "--loglevel", "warning",
	}, persistence.args()...)
	name := d.nextName()
	var res *dockertest.Resource
	var port int
	// Docker publishes a host port chosen here (not one of its own choosing)
	// so that the node keeps it across restarts: a port Docker chose could be
	// handed to another node meanwhile, and the proxy would then forward to
	// the wrong node. Another process may take the port between the choice
	// and the bind: try again with another.
	for try := 0; ; try++ {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
		res, err = d.pool.RunWithOptions(&dockertest.RunOptions{
			Name:         name,
			Repository:   d.repository,
			Tag:          d.tag,
			Cmd:          cmd,
			Labels:       map[string]string{Label: d.owner},
			ExposedPorts: []string{redisPort},
			PortBindings: map[dc.Port][]dc.PortBinding{
				redisPort: {{HostIP: "127.0.0.1", HostPort: strconv.Itoa(port)}},
			},
		}, func(hc *dc.HostConfig) {
			hc.PublishAllPorts = false // only the loopback binding above
			hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
		})
		if err == nil {
			break
		}
		// The container may exist even though the run failed (created, then
		// not started): remove it by its unique name.
		if rerr := d.removeByName(ctx, name); rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		if try < 3 && portTaken(err) {
			continue
		}
		return nil, fmt.Errorf("starting %s: %w", d.Image(), err)
	}
	d.track(res.Container.ID)
	n := &Node{
		Index:       index,
		d:           d,
		name:        name,
		id:          res.Container.ID,
		direct:      net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		persistence: persistence,
	}
	if err := n.waitReady(ctx); err != nil {
		_ = d.remove(context.WithoutCancel(ctx), n.id)
		return nil, err
	}
	proxy, err := NewProxy(n.direct)
	if err != nil {
		_ = d.remove(context.WithoutCancel(ctx), n.id)
		return nil, err
	}
	n.proxy = proxy
	return n, nil
}

func portTaken(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")
}

// removeByName removes the container with exactly this name, if any.
func (d *Docker) removeByName(ctx context.Context, name string) error {
	list, err := d.pool.Client.ListContainers(dc.ListContainersOptions{
		All: true, Filters: map[string][]string{"name": {"^/" + name + "$"}}, Context: ctx,
	})
	if err != nil {
		return err
	}
	for _, c := range list {
		if err := d.remove(ctx, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// Addr returns the address clients dial: the node's proxy on 127.0.0.1. It
// stays the same across the node's restarts.
func (n *Node) Addr() string { return n.proxy.Addr() }

// URL returns redis://Addr.
func (n *Node) URL() string { return "redis://" + n.Addr() }

// DirectAddr returns the port Docker publishes for the node, which bypasses
// the proxy and its faults.
func (n *Node) DirectAddr() string { return n.direct }

// Persistence returns what the node writes to disk.
func (n *Node) Persistence() Persistence { return n.persistence }

// Proxy returns the proxy in front of the node.
func (n *Node) Proxy() *Proxy { return n.proxy }

// String names the node by index and client address, for messages.
func (n *Node) String() string { return fmt.Sprintf("node %d (%s)", n.Index, n.Addr()) }

// Kill sends SIGKILL to Redis, a crash: nothing is saved beyond what the
// node's persistence already wrote. The container and its disk stay, for
// Start. It returns once the container has stopped.
func (n *Node) Kill(ctx context.Context) error {
	return n.signal(ctx, dc.SIGKILL)
}

// Stop sends SIGTERM, a graceful shutdown (Redis writes its snapshot if its
// persistence asks for one), and returns once the container has stopped.
// Docker's own stop would not do: dockertest sets the stop signal to one
// Redis ignores.
func (n *Node) Stop(ctx context.Context) error {
	return n.signal(ctx, dc.SIGTERM)
}

func (n *Node) signal(ctx context.Context, sig dc.Signal) error {
	c := n.d.pool.Client
	n.mu.Lock()
	if n.paused {
		// A frozen process cannot act on a signal; Docker refuses to kill
		// a paused container.
		if err := c.UnpauseContainer(n.id); err != nil {
			n.mu.Unlock()
			return fmt.Errorf("%v: unpause before signal: %w", n, err)
		}
		n.paused = false
	}
	n.mu.Unlock()
	if err := c.KillContainer(dc.KillContainerOptions{ID: n.id, Signal: sig, Context: ctx}); err != nil {
		var notRunning *dc.ContainerNotRunning
		if errors.As(err, &notRunning) {
			return nil
		}
		return fmt.Errorf("%v: signal %d: %w", n, sig, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := c.WaitContainerWithContext(n.id, wctx); err != nil {
		// A graceful shutdown that takes this long is stuck: crash it.
		_ = c.KillContainer(dc.KillContainerOptions{ID: n.id, Signal: dc.SIGKILL})
		if _, err := c.WaitContainerWithContext(n.id, context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("%v: waiting for exit: %w", n, err)
		}
	}
	return nil
}

// Start starts the stopped container again on the same host port and waits
// until Redis answers PING (after loading whatever it persisted).
func (n *Node) Start(ctx context.Context) error {
	c := n.d.pool.Client
	if err := c.StartContainerWithContext(n.id, nil, ctx); err != nil {
		var running *dc.ContainerAlreadyRunning
		if !errors.As(err, &running) {
			return fmt.Errorf("%v: start: %w", n, err)
		}
	}
	info, err := c.InspectContainerWithContext(n.id, ctx)
	if err != nil {
		return fmt.Errorf("%v: inspect: %w", n, err)
	}
	if b := info.NetworkSettings.Ports[redisPort]; len(b) == 0 || net.JoinHostPort(b[0].HostIP, b[0].HostPort) != n.direct {
		return fmt.Errorf("%v: published on %v after restart, not %s", n, b, n.direct)
	}
	return n.waitReady(ctx)
}

// Pause freezes the container: connections stay open and commands hang, as
// on a node stuck in a long GC or swap. Unpause resumes it, and it then
// answers everything it received meanwhile.
func (n *Node) Pause(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.d.pool.Client.PauseContainer(n.id); err != nil {
		return fmt.Errorf("%v: pause: %w", n, err)
	}
	n.paused = true
	return nil
}

// Unpause resumes a paused container.
func (n *Node) Unpause(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.d.pool.Client.UnpauseContainer(n.id); err != nil {
		return fmt.Errorf("%v: unpause: %w", n, err)
	}
	n.paused = false
	return nil
}

// Cut makes the link between clients and the node refuse (Proxy.Cut).
func (n *Node) Cut() { n.proxy.Cut() }

// Hold makes the link between clients and the node silent (Proxy.Hold).
func (n *Node) Hold() { n.proxy.Hold() }

// Heal ends Cut and Hold.
func (n *Node) Heal() { n.proxy.Heal() }

// SetLatency adds d to every round trip between clients and the node.
func (n *Node) SetLatency(d time.Duration) { n.proxy.SetLatency(d) }

// Do runs one command on the node over a connection of its own that bypasses
// the proxy, bounded by ctx.
func (n *Node) Do(ctx context.Context, cmd string, args ...any) (any, error) {
	conn, err := redis.DialContext(ctx, "tcp", n.direct)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", n, err)
	}
	defer conn.Close()
	return pool.Do(ctx, conn, cmd, args...)
}

// RunID returns the server's run_id, which changes on every restart: a test
// uses it to prove that a node really restarted.
func (n *Node) RunID(ctx context.Context) (string, error) {
	info, err := redis.String(n.Do(ctx, "INFO", "server"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%v: no run_id in INFO server", n)
}

// close unfreezes the node, closes its proxy and removes its container.
func (n *Node) close(ctx context.Context) error {
	var perr error
	if n.proxy != nil {
		perr = n.proxy.Close()
	}
	return errors.Join(perr, n.d.remove(ctx, n.id))
}

// waitReady polls PING until Redis answers +PONG (not -LOADING, not a
// connection the port forwarder accepted and then dropped).
func (n *Node) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if last = ping(ctx, n.direct); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (%s) not ready after %v: %w", n.name, n.direct, readyTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends a raw PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	dialer := net.Dialer{Timeout: 500 * time.Millisecond}
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
