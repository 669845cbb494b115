package redlock_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/clock"
	"github.com/quorumlock/quorumlock/internal/memnode"
	"github.com/quorumlock/quorumlock/internal/redistest"
	"github.com/quorumlock/quorumlock/pool"
	"github.com/quorumlock/quorumlock/redlock"
)

// healthyInfo is what a standalone, durable, non-evicting Redis 7 master
// answers; id makes its run_id and master_replid its own.
func healthyInfo(id int) memnode.Info {
	return memnode.Info{
		"redis_version":      "7.0.15",
		"redis_mode":         "standalone",
		"run_id":             strings.Repeat(strconv.Itoa(id), 40)[:40],
		"role":               "master",
		"connected_slaves":   "0",
		"master_replid":      fmt.Sprintf("r%039d", id),
		"maxmemory":          "0",
		"maxmemory_policy":   "noeviction",
		"aof_enabled":        "1",
		"config:appendfsync": "always",
	}
}

// with returns a copy of info with the given fields set ("" deletes).
func with(info memnode.Info, kv ...string) memnode.Info {
	out := make(memnode.Info, len(info))
	for k, v := range info {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// verdicts returns each node's verdict of one check ("-" when absent).
func verdicts(rep *redlock.NodeReport, check string) []redlock.Verdict {
	out := make([]redlock.Verdict, len(rep.Nodes))
	for i, n := range rep.Nodes {
		out[i] = "-"
		for _, f := range n.Findings {
			if f.Check == check {
				if out[i] != "-" {
					out[i] = "twice"
					continue
				}
				out[i] = f.Verdict
			}
		}
	}
	return out
}

func finding(rep *redlock.NodeReport, node int, check string) redlock.Finding {
	for _, f := range rep.Nodes[node].Findings {
		if f.Check == check {
			return f
		}
	}
	return redlock.Finding{}
}

func TestCheckFindingsFromInfo(t *testing.T) {
	const (
		ok   = redlock.VerdictOK
		unk  = redlock.VerdictUnknown
		warn = redlock.VerdictWarning
		bad  = redlock.VerdictError
	)
	tests := []struct {
		name   string
		infos  func() []memnode.Info // one per node, three nodes
		opts   []redlock.Option
		check  string
		want   []redlock.Verdict
		detail string // in the first non-OK finding of check
	}{
		{
			name:  "healthy masters",
			infos: func() []memnode.Info { return []memnode.Info{healthyInfo(1), healthyInfo(2), healthyInfo(3)} },
			check: redlock.CheckSameServer, want: []redlock.Verdict{ok, ok, ok},
		},
		{
			name: "one server behind two addresses",
			infos: func() []memnode.Info {
				return []memnode.Info{healthyInfo(1), healthyInfo(1), healthyInfo(3)}
			},
			check: redlock.CheckSameServer, want: []redlock.Verdict{bad, bad, ok}, detail: "counted as 2 votes",
		},
		{
			name: "a replica",
			infos: func() []memnode.Info {
				return []memnode.Info{healthyInfo(1), with(healthyInfo(2), "role", "slave", "master_host", "10.9.9.9", "master_port", "6379"), healthyInfo(3)}
			},
			check: redlock.CheckRole, want: []redlock.Verdict{ok, bad, ok}, detail: "a replica of 10.9.9.9:6379",
		},
		{
			name: "two nodes sharing a replication id",
			infos: func() []memnode.Info {
				return []memnode.Info{healthyInfo(1), with(healthyInfo(2), "master_replid", healthyInfo(1)["master_replid"]), healthyInfo(3)}
			},
			check: redlock.CheckReplication, want: []redlock.Verdict{bad, bad, ok}, detail: "same master_replid",
		},
		{
			name: "a master whose replica is another listed node",
			infos: func() []memnode.Info {
				return []memnode.Info{
					with(healthyInfo(1), "connected_slaves", "1", "slave0", "ip=10.0.0.3,port=6379,state=online,offset=1,lag=0"),
					healthyInfo(2), healthyInfo(3),
				}
			},
			check: redlock.CheckReplication, want: []redlock.Verdict{bad, ok, ok}, detail: "10.0.0.3:6379 (its replica)",
		},
		{
			name: "a replica whose master is another listed node",
			infos: func() []memnode.Info {
				return []memnode.Info{healthyInfo(1), healthyInfo(2),
					with(healthyInfo(3), "role", "slave", "master_host", "10.0.0.1", "master_port", "6379")}
			},
			check: redlock.CheckReplication, want: []redlock.Verdict{ok, ok, bad}, detail: "10.0.0.1:6379 (its master)",
		},
		{
			name: "evicting policies",
			infos: func() []memnode.Info {
				return []memnode.Info{
					with(healthyInfo(1), "maxmemory_policy", "allkeys-lru", "maxmemory", "104857600"),
					with(healthyInfo(2), "maxmemory_policy", "volatile-ttl", "maxmemory", "104857600"),
					with(healthyInfo(3), "maxmemory_policy", "allkeys-lfu", "maxmemory", "0"),
				}
			},
			check: redlock.CheckEviction, want: []redlock.Verdict{bad, bad, warn}, detail: "set maxmemory-policy noeviction",
		},
		{
			name: "policy from CONFIG when INFO lacks it; none at all",
			infos: func() []memnode.Info {
				return []memnode.Info{
					with(healthyInfo(1), "maxmemory_policy", "", "maxmemory", "", "config:maxmemory-policy", "volatile-lru"),
					with(healthyInfo(2), "maxmemory_policy", ""),
					healthyInfo(3),
				}
			},
			check: redlock.CheckEviction, want: []redlock.Verdict{bad, unk, ok}, detail: "volatile-lru",
		},
		{
			name: "persistence: none, everysec, fsync refused",
			infos: func() []memnode.Info {
				return []memnode.Info{
					with(healthyInfo(1), "aof_enabled", "0"),
					with(healthyInfo(2), "config:appendfsync", "everysec"),
					with(healthyInfo(3), "config:appendfsync", ""),
				}
			},
			check: redlock.CheckPersistence, want: []redlock.Verdict{warn, warn, unk}, detail: "restart quarantine (on by default)",
		},
		{
			name: "cluster mode and an old server",
			infos: func() []memnode.Info {
				return []memnode.Info{with(healthyInfo(1), "redis_mode", "cluster"), healthyInfo(2), healthyInfo(3)}
			},
			check: redlock.CheckMode, want: []redlock.Verdict{bad, ok, ok}, detail: "CROSSSLOT",
		},
		{
			name: "version",
			infos: func() []memnode.Info {
				return []memnode.Info{with(healthyInfo(1), "redis_version", "4.0.14"), with(healthyInfo(2), "redis_version", ""), healthyInfo(3)}
			},
			check: redlock.CheckVersion, want: []redlock.Verdict{bad, unk, ok}, detail: "need Redis 5",
		},
		{
			name: "INFO and CONFIG tell nothing",
			infos: func() []memnode.Info {
				return []memnode.Info{nil, healthyInfo(2), healthyInfo(3)}
			},
			check: redlock.CheckSameServer, want: []redlock.Verdict{unk, ok, ok}, detail: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, 3)
			for i, info := range tt.infos() {
				c.nodes[i].SetInfo(info)
			}
			lk := c.locker(tt.opts...)
			rep, err := within(t, "Check", func() result2 { r, err := lk.Check(t.Context()); return result2{r, err} }).unpack()
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := verdicts(rep, tt.check); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("%s verdicts %v, want %v\n%s", tt.check, got, tt.want, rep)
			}
			if tt.detail != "" {
				var found bool
				for _, f := range rep.Findings(redlock.VerdictUnknown) {
					if f.Check == tt.check && strings.Contains(f.Detail, tt.detail) {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s finding says %q:\n%s", tt.check, tt.detail, rep)
				}
			}
			// Strict mode refuses exactly when a finding is an error.
			hasError := false
			for _, v := range tt.want {
				hasError = hasError || v == bad
			}
			if err := rep.Err(); (err != nil) != hasError || err != nil && (!errors.Is(err, redlock.ErrUnsafeNodes) || !errors.Is(err, redlock.ErrInvalid)) {
				t.Errorf("report error %v, want one matching ErrUnsafeNodes and ErrInvalid: %v", err, hasError)
			}
		})
	}
}

type result2 struct {
	rep *redlock.NodeReport
	err error
}

func (r result2) unpack() (*redlock.NodeReport, error) { return r.rep, r.err }

func TestCheckUnreachableAndUncheckedNodes(t *testing.T) {
	c := newCluster(t, 3)
	c.nodes[0].SetInfo(healthyInfo(1))
	c.nodes[1].Fail(errDown)
	// A Pool without pool.Commander: only Addr and Eval.
	var bare struct{ pool.Pool }
	bare.Pool = c.nodes[2]
	lk := newLocker(t, c.clock, []pool.Pool{c.nodes[0], c.nodes[1], bare})

	rep, err := lk.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := rep.Nodes
	if !n[0].Checked || !n[0].Reachable || n[0].RunID != healthyInfo(1)["run_id"] || n[0].Role != "master" {
		t.Errorf("healthy node: %+v", n[0])
	}
	if !n[1].Checked || n[1].Reachable || !strings.Contains(n[1].Error, errDown.Error()) {
		t.Errorf("failed node: %+v", n[1])
	}
	if n[2].Checked || n[2].Reachable {
		t.Errorf("node without Commander: %+v", n[2])
	}
	want := []redlock.Verdict{redlock.VerdictOK, redlock.VerdictWarning, redlock.VerdictUnknown}
	if got := verdicts(rep, redlock.CheckReachable); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reachable verdicts %v, want %v\n%s", got, want, rep)
	}
	if err := rep.Err(); err != nil {
		t.Errorf("unreachable and unchecked nodes are not errors: %v", err)
	}
}

func TestCheckHungNodeIsUnreachableAfterTheNodeTimeout(t *testing.T) {
	c := newCluster(t, 3)
	for i, n := range c.nodes {
		n.SetInfo(healthyInfo(i))
	}
	c.nodes[2].Hang()
	const timeout = 300 * time.Millisecond
	lk := c.locker(redlock.WithNodeTimeout(timeout))

	ch := make(chan result2, 1)
	go func() { r, err := lk.Check(t.Context()); ch <- result2{r, err} }()
	// Jump from timer to timer until Check returns: the hung node answers
	// only when its timeout fires.
	var r result2
	deadline := time.Now().Add(hangBound)
	for done := false; !done; {
		select {
		case r = <-ch:
			done = true
		default:
			if time.Now().After(deadline) {
				t.Fatalf("Check did not return within %v", hangBound)
			}
			if next, ok := c.clock.NextDeadline(); ok {
				c.clock.Set(next)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if waited := c.clock.Since(epoch); waited < timeout {
		t.Errorf("Check returned after %v of fake time, before the node timeout %v", waited, timeout)
	}
	hung := r.rep.Nodes[2]
	if hung.Reachable || !strings.Contains(hung.Error, "timeout") {
		t.Errorf("hung node: %+v", hung)
	}
	if !r.rep.Nodes[0].Reachable || !r.rep.Nodes[1].Reachable {
		t.Errorf("healthy nodes reported unreachable:\n%s", r.rep)
	}
}

// timeNode answers TIME with its fake clock moved by offset, as a node whose
// wall clock is off.
type timeNode struct {
	*memnode.Node
	clock  clock.Clock
	offset time.Duration
}

func (n timeNode) Command(ctx context.Context, cmd string, args ...any) (any, error) {
	if strings.EqualFold(cmd, "TIME") {
		t := n.clock.Now().Add(n.offset)
		us := t.UnixMicro()
		return []any{[]byte(strconv.FormatInt(us/1e6, 10)), []byte(strconv.FormatInt(us%1e6, 10))}, nil
	}
	return n.Node.Command(ctx, cmd, args...)
}

func TestCheckClockOffset(t *testing.T) {
	c := newCluster(t, 3)
	offsets := []time.Duration{0, 30 * time.Millisecond, -5 * time.Second}
	nodes := make([]pool.Pool, 3)
	for i, n := range c.nodes {
		n.SetInfo(healthyInfo(i))
		nodes[i] = timeNode{Node: n, clock: c.clock, offset: offsets[i]}
	}
	lk := newLocker(t, c.clock, nodes)
	rep, err := lk.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range rep.Nodes {
		// The fake clock stands still, so the round trip and its
		// uncertainty are zero and the offset is exact.
		if !n.ClockKnown || n.ClockOffset != offsets[i] || n.ClockUncertainty != 0 {
			t.Errorf("node %d: clock known %v, offset %v ±%v, want %v", i, n.ClockKnown, n.ClockOffset, n.ClockUncertainty, offsets[i])
		}
	}
	want := []redlock.Verdict{redlock.VerdictOK, redlock.VerdictOK, redlock.VerdictWarning}
	if got := verdicts(rep, redlock.CheckClock); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("clock verdicts %v, want %v\n%s", got, want, rep)
	}
	if f := finding(rep, 2, redlock.CheckClock); !strings.Contains(f.Detail, "5s behind") {
		t.Errorf("clock finding %q does not say the node is 5s behind", f.Detail)
	}
	if rep.Worst() != redlock.VerdictWarning {
		t.Errorf("worst verdict %v, want warning:\n%s", rep.Worst(), rep)
	}
}

func TestNewCheckedRefusesErrorFindings(t *testing.T) {
	c := newCluster(t, 3)
	c.nodes[0].SetInfo(healthyInfo(1))
	c.nodes[1].SetInfo(healthyInfo(1))
	c.nodes[2].SetInfo(with(healthyInfo(3), "aof_enabled", "0"))

	lk, rep, err := redlock.NewChecked(t.Context(), c.pools(), redlock.WithClock(c.clock))
	if lk != nil || !errors.Is(err, redlock.ErrUnsafeNodes) || !errors.Is(err, redlock.ErrInvalid) {
		t.Fatalf("NewChecked over one server listed twice: %v, %v", lk, err)
	}
	if rep == nil || len(rep.Findings(redlock.VerdictError)) != 2 {
		t.Fatalf("report with the refusal: %v", rep)
	}
	for _, addr := range []string{c.nodes[0].Addr(), c.nodes[1].Addr()} {
		if !strings.Contains(err.Error(), addr+" "+redlock.CheckSameServer) {
			t.Errorf("error does not name %s: %v", addr, err)
		}
	}
	if strings.Contains(err.Error(), c.nodes[2].Addr()) {
		t.Errorf("error names the node with only a warning: %v", err)
	}

	// Warnings alone do not refuse.
	c.nodes[1].SetInfo(healthyInfo(2))
	lk, rep, err = redlock.NewChecked(t.Context(), c.pools(), redlock.WithClock(c.clock))
	if err != nil || lk == nil || rep.Worst() != redlock.VerdictWarning {
		t.Fatalf("NewChecked with a warning: %v, %v, worst %v", lk, err, rep.Worst())
	}
	closeWithin(t, lk, c.clock)

	// Invalid input is New's error, with no report.
	lk, rep, err = redlock.NewChecked(t.Context(), nil)
	if lk != nil || rep != nil || !errors.Is(err, redlock.ErrInvalid) || errors.Is(err, redlock.ErrUnsafeNodes) {
		t.Fatalf("NewChecked(nil): %v, %v, %v", lk, rep, err)
	}
}

func TestNewCheckedRefusesAnIncompleteCheck(t *testing.T) {
	c := newCluster(t, 3)
	for i, n := range c.nodes {
		n.SetInfo(healthyInfo(i))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	lk, rep, err := redlock.NewChecked(ctx, c.pools(), redlock.WithClock(c.clock))
	if lk != nil || !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("NewChecked with an ended context: %v, %v, %v", lk, rep, err)
	}
}

func TestCheckAfterClose(t *testing.T) {
	c := newCluster(t, 1)
	lk, err := redlock.New(c.pools(), redlock.WithClock(c.clock))
	if err != nil {
		t.Fatal(err)
	}
	closeWithin(t, lk, c.clock)
	if _, err := lk.Check(t.Context()); !errors.Is(err, redlock.ErrClosed) {
		t.Fatalf("Check after Close: %v", err)
	}
}

func TestNodeReportStringAndJSON(t *testing.T) {
	c := newCluster(t, 2)
	c.nodes[0].SetInfo(healthyInfo(1))
	c.nodes[1].SetInfo(with(healthyInfo(2), "maxmemory_policy", "allkeys-lru", "maxmemory", "1000"))
	rep, err := c.locker().Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s := rep.String()
	for _, want := range []string{
		"NODE", "MAXMEMORY-POLICY", "CLOCK OFFSET",
		c.nodes[0].Addr(), "noeviction", "7.0.15", "11111111 ",
		"ERROR    " + c.nodes[1].Addr() + "  " + redlock.CheckEviction,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Quorum int `json:"quorum"`
		Nodes  []struct {
			Addr            string `json:"addr"`
			RunID           string `json:"run_id"`
			MaxmemoryPolicy string `json:"maxmemory_policy"`
			Findings        []struct {
				Check, Verdict string
			} `json:"findings"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Quorum != 2 || len(back.Nodes) != 2 || back.Nodes[1].MaxmemoryPolicy != "allkeys-lru" ||
		back.Nodes[0].RunID != healthyInfo(1)["run_id"] || len(back.Nodes[1].Findings) == 0 {
		t.Errorf("JSON %s", b)
	}
}

// Real servers: what Redis itself reports.

func checkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dialAll(t *testing.T, urls ...string) []pool.Pool {
	t.Helper()
	ps := make([]pool.Pool, len(urls))
	for i, u := range urls {
		p, err := pool.Dial(u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		ps[i] = p
	}
	return ps
}

func TestCheckRealServerListedTwice(t *testing.T) {
	servers := redistest.Start(t, 2)
	port := strconv.Itoa(servers[0].Port)
	nodes := dialAll(t, "redis://127.0.0.1:"+port, "redis://localhost:"+port, servers[1].URL())

	lk, rep, err := redlock.NewChecked(checkCtx(t), nodes)
	if lk != nil || !errors.Is(err, redlock.ErrUnsafeNodes) {
		t.Fatalf("NewChecked over one server under two names: %v, %v", lk, err)
	}
	want := []redlock.Verdict{redlock.VerdictError, redlock.VerdictError, redlock.VerdictOK}
	if got := verdicts(rep, redlock.CheckSameServer); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("same-server verdicts %v, want %v\n%s", got, want, rep)
	}
	if rep.Nodes[0].RunID == "" || rep.Nodes[0].RunID != rep.Nodes[1].RunID || rep.Nodes[2].RunID == rep.Nodes[0].RunID {
		t.Errorf("run_ids %q %q %q", rep.Nodes[0].RunID, rep.Nodes[1].RunID, rep.Nodes[2].RunID)
	}
	t.Logf("\n%s", rep)
}

func TestCheckRealServers(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		check  string
		want   redlock.Verdict
		detail string
		strict bool // NewChecked accepts the node
	}{
		{"defaults of the test servers", nil, redlock.CheckEviction, redlock.VerdictOK, "noeviction", true},
		{"evicting with a limit", []string{"--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"},
			redlock.CheckEviction, redlock.VerdictError, "allkeys-lru evicts", false},
		{"evicting policy without a limit", []string{"--maxmemory-policy", "volatile-lru"},
			redlock.CheckEviction, redlock.VerdictWarning, "no maxmemory limit", true},
		{"no persistence", nil, redlock.CheckPersistence, redlock.VerdictWarning, "restart quarantine", true},
		{"AOF everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"},
			redlock.CheckPersistence, redlock.VerdictWarning, "appendfsync everysec", true},
		{"AOF always", []string{"--appendonly", "yes", "--appendfsync", "always"},
			redlock.CheckPersistence, redlock.VerdictOK, "", true},
		{"CONFIG renamed away", []string{"--appendonly", "yes", "--rename-command", "CONFIG", ""},
			redlock.CheckPersistence, redlock.VerdictUnknown, "CONFIG GET appendfsync was refused", true},
		{"CONFIG renamed away, policy still from INFO", []string{"--rename-command", "CONFIG", ""},
			redlock.CheckEviction, redlock.VerdictOK, "noeviction", true},
		{"INFO renamed away", []string{"--rename-command", "INFO", ""},
			redlock.CheckRole, redlock.VerdictUnknown, "did not give the role", true},
		{"TIME renamed away", []string{"--rename-command", "TIME", ""},
			redlock.CheckClock, redlock.VerdictUnknown, "TIME was refused", true},
		{"clock", nil, redlock.CheckClock, redlock.VerdictOK, "this client's", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := redistest.Start(t, 1, tt.args...)
			lk, rep, err := redlock.NewChecked(checkCtx(t), redistest.Pools(t, servers))
			if lk != nil {
				t.Cleanup(func() { _ = lk.Close() })
			}
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			if (err == nil) != tt.strict {
				t.Errorf("NewChecked: %v, want accepted %v", err, tt.strict)
			}
			f := finding(rep, 0, tt.check)
			if f.Verdict != tt.want || !strings.Contains(f.Detail, tt.detail) {
				t.Errorf("%s: %v %q, want %v saying %q\n%s", tt.check, f.Verdict, f.Detail, tt.want, tt.detail, rep)
			}
			if n := rep.Nodes[0]; !n.Reachable || n.Latency <= 0 {
				t.Errorf("node not reachable or no latency: %+v", n)
			}
		})
	}
}

func TestCheckRealReplica(t *testing.T) {
	// No delay before the first sync (7.0 waits 5s by default for more
	// replicas to join a diskless sync).
	master := redistest.Start(t, 1, "--repl-diskless-sync-delay", "0")[0]
	replica := redistest.Start(t, 1, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))[0]
	other := redistest.Start(t, 1)[0]
	lk := adminLocker(t, []*redistest.Server{master, replica, other})

	// The replica adopts its master's replication id once the first sync
	// is done; until then it is already a replica.
	var rep *redlock.NodeReport
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if rep, err = lk.Check(checkCtx(t)); err != nil {
			t.Fatal(err)
		}
		if rep.Nodes[0].ReplID == rep.Nodes[1].ReplID || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := verdicts(rep, redlock.CheckRole); fmt.Sprint(got) != "[ok error ok]" {
		t.Errorf("role verdicts %v\n%s", got, rep)
	}
	if got := verdicts(rep, redlock.CheckReplication); fmt.Sprint(got) != "[error error ok]" {
		t.Errorf("replication verdicts %v\n%s", got, rep)
	}
	if f := finding(rep, 1, redlock.CheckRole); !strings.Contains(f.Detail, master.Addr) {
		t.Errorf("role finding %q does not name the master %s", f.Detail, master.Addr)
	}
	if err := rep.Err(); !errors.Is(err, redlock.ErrUnsafeNodes) {
		t.Errorf("report error %v", err)
	}
	t.Logf("\n%s", rep)
}

func TestNodeReportLog(t *testing.T) {
	c := newCluster(t, 2)
	c.nodes[0].SetInfo(healthyInfo(1))
	c.nodes[1].SetInfo(with(healthyInfo(2), "role", "slave", "aof_enabled", "0"))
	rep, err := c.locker().Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	rep.Log(t.Context(), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// The replica's role (error) and persistence (warning); unknowns (the
	// clock: memnode has no TIME) are below Warn.
	if len(lines) != 2 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "check=role") ||
		!strings.Contains(lines[1], "level=WARN") || !strings.Contains(lines[1], "check=persistence") ||
		!strings.Contains(lines[0], "node="+c.nodes[1].Addr()) {
		t.Errorf("log:\n%s", buf.String())
	}
	rep.Log(t.Context(), nil) // logs nothing, does not panic
}
