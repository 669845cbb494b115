package redlock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// ErrUnsafeNodes is matched by the error of NewChecked when the node check
// found a configuration under which Redlock's guarantees do not hold (one
// server listed twice, a replica, an evicting memory policy...). The error
// matches ErrInvalid too.
var ErrUnsafeNodes = errors.New("nodes unsafe for Redlock")

// Verdict grades one finding of a node check.
type Verdict string

// Verdicts, from harmless to fatal. Only VerdictError makes NewChecked refuse.
const (
	// VerdictOK means the node is as Redlock needs it in this respect.
	VerdictOK Verdict = "ok"
	// VerdictUnknown means the node did not tell (an error reply, a renamed
	// or forbidden command, a Pool that cannot run commands). It is never a
	// failure by itself; treat what it hides as the worse case.
	VerdictUnknown Verdict = "unknown"
	// VerdictWarning means locks stay safe only with a remedy that is
	// described in the finding (and on by default where the library has one).
	VerdictWarning Verdict = "warning"
	// VerdictError means locks are not safe on these nodes.
	VerdictError Verdict = "error"
)

func (v Verdict) rank() int {
	switch v {
	case VerdictUnknown:
		return 1
	case VerdictWarning:
		return 2
	case VerdictError:
		return 3
	}
	return 0
}

// The names of the checks, as they appear in Finding.Check.
const (
	CheckReachable   = "reachable"        // the node answers PING
	CheckSameServer  = "same-server"      // two addresses reach one server (same run_id)
	CheckRole        = "role"             // a master, not a replica
	CheckMode        = "mode"             // standalone, not cluster or sentinel
	CheckReplication = "replication"      // not linked by replication to another listed node
	CheckVersion     = "version"          // new enough for the scripts
	CheckEviction    = "maxmemory-policy" // lock keys are never evicted
	CheckPersistence = "persistence"      // acknowledged locks survive a crash
	CheckClock       = "clock"            // the node's clock against this client's
)

// Finding is one verdict about one node.
type Finding struct {
	// Addr is the node's address.
	Addr string `json:"addr"`
	// Check names what was checked (CheckRole, CheckEviction...).
	Check   string  `json:"check"`
	Verdict Verdict `json:"verdict"`
	// Detail says what was seen, why it matters and what to do.
	Detail string `json:"detail"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s %s %s: %s", strings.ToUpper(string(f.Verdict)), f.Addr, f.Check, f.Detail)
}

// NodeStatus is what the check learned about one node. Empty strings and
// false Known flags mean the node did not tell.
type NodeStatus struct {
	Addr string `json:"addr"`
	// Checked is false when the node's Pool cannot run commands (it does
	// not implement pool.Commander): nothing else is known then.
	Checked bool `json:"checked"`
	// Reachable is true when the node answered PING.
	Reachable bool `json:"reachable"`
	// Error is why the node could not be reached.
	Error string `json:"error,omitempty"`
	// Latency is the round trip of PING.
	Latency time.Duration `json:"latency_ns"`

	// From INFO: run_id changes on every start of the server; Role is
	// "master" or "slave"; Mode is "standalone", "cluster" or "sentinel".
	RunID   string `json:"run_id,omitempty"`
	Version string `json:"version,omitempty"`
	Role    string `json:"role,omitempty"`
	Mode    string `json:"mode,omitempty"`
	// ReplID is master_replid: a replica shares its master's.
	ReplID string `json:"master_replid,omitempty"`
	// MasterAddr is, for a replica, the master it replicates (host:port).
	MasterAddr string `json:"master,omitempty"`
	// Replicas are, for a master, its connected replicas (ip:port).
	Replicas []string `json:"replicas,omitempty"`

	// MaxmemoryPolicy is the eviction policy; MaxmemoryKnown tells whether
	// Maxmemory (0: no limit) was reported.
	MaxmemoryPolicy string `json:"maxmemory_policy,omitempty"`
	Maxmemory       int64  `json:"maxmemory"`
	MaxmemoryKnown  bool   `json:"maxmemory_known"`
	// AOF is "yes" or "no" (INFO persistence aof_enabled); Appendfsync is
	// "always", "everysec" or "no" (CONFIG GET appendfsync).
	AOF         string `json:"aof,omitempty"`
	Appendfsync string `json:"appendfsync,omitempty"`

	// ClockOffset is the node's wall clock (TIME) minus this client's, both
	// read at the middle of the round trip; the true offset is within
	// ClockUncertainty (half the round trip) of it. ClockKnown is false when
	// TIME was refused.
	ClockOffset      time.Duration `json:"clock_offset_ns"`
	ClockUncertainty time.Duration `json:"clock_uncertainty_ns"`
	ClockKnown       bool          `json:"clock_known"`

	// Findings are this node's verdicts, one per check.
	Findings []Finding `json:"findings"`
}

// Worst returns the node's most serious verdict.
func (s *NodeStatus) Worst() Verdict {
	w := VerdictOK
	for _, f := range s.Findings {
		if f.Verdict.rank() > w.rank() {
			w = f.Verdict
		}
	}
	return w
}

func (s *NodeStatus) add(check string, v Verdict, format string, args ...any) {
	s.Findings = append(s.Findings, Finding{Addr: s.Addr, Check: check, Verdict: v, Detail: fmt.Sprintf(format, args...)})
}

// NodeReport is the result of Locker.Check: one NodeStatus per node, in the
// order the nodes were given to New.
type NodeReport struct {
	Quorum int          `json:"quorum"`
	Nodes  []NodeStatus `json:"nodes"`
}

// Findings returns the findings of every node whose verdict is at least min,
// node by node.
func (r *NodeReport) Findings(min Verdict) []Finding {
	var out []Finding
	for _, n := range r.Nodes {
		for _, f := range n.Findings {
			if f.Verdict.rank() >= min.rank() {
				out = append(out, f)
			}
		}
	}
	return out
}

// Worst returns the most serious verdict of the report.
func (r *NodeReport) Worst() Verdict {
	w := VerdictOK
	for i := range r.Nodes {
		if v := r.Nodes[i].Worst(); v.rank() > w.rank() {
			w = v
		}
	}
	return w
}

// Err returns nil when no finding is an error, and otherwise an error
// matching ErrUnsafeNodes and ErrInvalid that lists the error findings.
func (r *NodeReport) Err() error {
	errs := r.Findings(VerdictError)
	if len(errs) == 0 {
		return nil
	}
	lines := make([]string, len(errs))
	for i, f := range errs {
		lines[i] = f.Addr + " " + f.Check + ": " + f.Detail
	}
	return fmt.Errorf("redlock: %w (%w): %s", ErrUnsafeNodes, ErrInvalid, strings.Join(lines, "; "))
}

// Log writes every finding that is not OK to l, one record per finding:
// errors at slog.LevelError, warnings at slog.LevelWarn, unknowns at
// slog.LevelInfo, with the node's address, the check and the verdict as
// attributes. A nil l logs nothing.
func (r *NodeReport) Log(ctx context.Context, l *slog.Logger) {
	if l == nil {
		return
	}
	for _, f := range r.Findings(VerdictUnknown) {
		level := slog.LevelInfo
		switch f.Verdict {
		case VerdictError:
			level = slog.LevelError
		case VerdictWarning:
			level = slog.LevelWarn
		}
		l.Log(ctx, level, "redlock: node check: "+f.Detail,
			slog.String("node", f.Addr), slog.String("check", f.Check), slog.String("verdict", string(f.Verdict)))
	}
}

// String prints the report as a table, one row per node, followed by every
// finding that is not OK.
func (r *NodeReport) String() string {
	var b strings.Builder
	r.write(&b)
	return b.String()
}

func (r *NodeReport) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREACHABLE\tLATENCY\tROLE\tVERSION\tRUN_ID\tMAXMEMORY-POLICY\tAOF\tAPPENDFSYNC\tCLOCK OFFSET\tVERDICT")
	for i := range r.Nodes {
		n := &r.Nodes[i]
		reach, latency := "unknown", "-"
		if n.Checked {
			reach = "no"
			if n.Reachable {
				reach, latency = "yes", n.Latency.Round(time.Microsecond).String()
			}
		}
		offset := "?"
		if n.ClockKnown {
			offset = fmt.Sprintf("%+v ±%v", n.ClockOffset.Round(time.Microsecond), n.ClockUncertainty.Round(time.Microsecond))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Addr, reach, latency,
			orUnknown(n.Role), orUnknown(n.Version), orUnknown(shortID(n.RunID)), orUnknown(n.MaxmemoryPolicy),
			orUnknown(n.AOF), orUnknown(n.Appendfsync), offset, n.Worst())
	}
	_ = tw.Flush()
	notOK := r.Findings(VerdictUnknown)
	if len(notOK) == 0 {
		fmt.Fprintf(w, "\nall %d nodes fit for Redlock (quorum %d)\n", len(r.Nodes), r.Quorum)
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range notOK {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ToUpper(string(f.Verdict)), f.Addr, f.Check, f.Detail)
	}
	_ = tw.Flush()
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// checkTimeout bounds each command of a node check when no node timeout was
// set: a hung node is reported unreachable instead of holding Check until the
// caller's context ends.
const checkTimeout = time.Second

// clockWarnOffset is how far a node's clock may be from the client's before
// the check warns. Redlock itself needs no synchronised clocks (expiry is
// relative), so this only flags a clock that NTP does not keep: such a clock
// tends to be stepped later, and a forward step expires locks early.
const clockWarnOffset = time.Second

// minMajor is the oldest Redis major version the lock scripts run on: the
// turn queue's ZPOPMIN, and a boot marker written after reading TIME
// (effects replication became the default in Redis 5).
const minMajor = 5

// Check asks every node, in parallel, what Redlock's safety depends on: is
// it reachable and how fast, which server it is (run_id) and its version, is
// it a standalone master not replicating from or to another listed node, can
// it evict lock keys (maxmemory-policy), does it keep acknowledged writes
// across a crash (AOF, appendfsync), and how far its clock (TIME) is from
// this client's. It uses pool.Commander (INFO, CONFIG GET, TIME, PING); a
// Pool without it is reported as not checked.
//
// What a node refuses to tell (an error reply, a renamed CONFIG) is
// VerdictUnknown, never a failure. Each command is bounded by ctx and by the
// node timeout (WithNodeTimeout, else one second), so a hung node is
// reported unreachable. Check changes nothing on the nodes and does not take
// part in locking; it may run while locks are in use.
//
// The error is ErrClosed after Close, or ctx's error when ctx ended before
// every node was checked (the report is then returned too, with the nodes
// not reached marked unreachable).
func (lk *Locker) Check(ctx context.Context) (*NodeReport, error) {
	rep := &NodeReport{Quorum: lk.quorum, Nodes: make([]NodeStatus, len(lk.nodes))}
	if err := lk.eachNode(ctx, func(ctx context.Context, i int, p pool.Pool) {
		rep.Nodes[i] = lk.checkNode(ctx, p)
	}); err != nil {
		return nil, err
	}
	for i := range rep.Nodes {
		lk.judgeNode(&rep.Nodes[i])
	}
	judgeTogether(rep.Nodes)
	return rep, ctx.Err()
}

// NewChecked is New followed by Check, in strict mode: it refuses (closing
// the Locker) when a finding is an error, with an error matching
// ErrUnsafeNodes and ErrInvalid that names each finding, or when ctx ended
// before the check completed. Warnings and unknowns do not refuse; read the
// report for them. The report is returned whenever the check ran.
func NewChecked(ctx context.Context, nodes []pool.Pool, opts ...Option) (*Locker, *NodeReport, error) {
	lk, err := New(nodes, opts...)
	if err != nil {
		return nil, nil, err
	}
	rep, err := lk.Check(ctx)
	if err == nil {
		err = rep.Err()
	} else {
		err = fmt.Errorf("redlock: node check incomplete: %w", err)
	}
	if err != nil {
		_ = lk.Close()
		return nil, rep, err
	}
	return lk, rep, nil
}

// checkNode gathers what node p tells about itself, without judging.
func (lk *Locker) checkNode(ctx context.Context, p pool.Pool) NodeStatus {
	st := NodeStatus{Addr: p.Addr()}
	c, ok := p.(pool.Commander)
	if !ok {
		return st
	}
	st.Checked = true
	run := func(cmd string, args ...any) (any, error) {
		d := lk.cfg.nodeTimeout
		if d <= 0 {
			d = checkTimeout
		}
		nctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t := lk.cfg.clock.AfterFunc(d, cancel)
		defer t.Stop()
		v, err := c.Command(nctx, cmd, args...)
		if err != nil && ctx.Err() == nil && nctx.Err() != nil {
			err = errNodeTimeout{timeout: d}
		}
		return v, err
	}
	// refused tells an error reply (the node answered: the fact is
	// unknown) from a failure to reach the node.
	refused := func(err error) bool {
		var se *pool.ServerError
		return errors.As(err, &se)
	}

	start := lk.cfg.clock.Now()
	_, err := run("PING")
	st.Latency = lk.cfg.clock.Since(start)
	if err != nil && !refused(err) {
		st.Error = err.Error()
		return st
	}
	st.Reachable = true

	// One INFO with the default sections (server, memory, persistence,
	// replication...) is one round trip where older servers refuse several
	// section names in one call.
	if reply, err := run("INFO"); err == nil {
		st.readInfo(parseInfo(reply))
	} else if !refused(err) {
		st.Error = err.Error()
	}
	if v, err := configGet(run, "maxmemory-policy"); err == nil && v != "" {
		st.MaxmemoryPolicy = v
	}
	if v, err := configGet(run, "appendfsync"); err == nil && v != "" {
		st.Appendfsync = v
	}
	before := lk.cfg.clock.Now()
	reply, err := run("TIME")
	rtt := lk.cfg.clock.Since(before)
	if err == nil {
		if node, ok := parseTime(reply); ok {
			mid := before.Add(rtt / 2)
			st.ClockOffset = node.Sub(mid)
			st.ClockUncertainty = rtt / 2
			st.ClockKnown = true
		}
	}
	return st
}

// parseInfo reads INFO's "key:value" lines; section headers, blank lines and
// anything malformed are skipped.
func parseInfo(reply any) map[string]string {
	var text string
	switch v := reply.(type) {
	case []byte:
		text = string(v)
	case string:
		text = v
	default:
		return nil
	}
	out := make(map[string]string)
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

func (st *NodeStatus) readInfo(info map[string]string) {
	st.RunID = info["run_id"]
	st.Version = info["redis_version"]
	st.Role = info["role"]
	st.Mode = info["redis_mode"]
	st.ReplID = info["master_replid"]
	if h, p := info["master_host"], info["master_port"]; h != "" && p != "" {
		st.MasterAddr = joinHostPort(h, p)
	}
	for i := 0; ; i++ {
		line, ok := info["slave"+strconv.Itoa(i)]
		if !ok {
			break
		}
		var ip, port string
		for _, kv := range strings.Split(line, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "ip":
				ip = v
			case "port":
				port = v
			}
		}
		if ip != "" && port != "" {
			st.Replicas = append(st.Replicas, joinHostPort(ip, port))
		}
	}
	if info["maxmemory_policy"] != "" {
		st.MaxmemoryPolicy = info["maxmemory_policy"]
	}
	if v, err := strconv.ParseInt(info["maxmemory"], 10, 64); err == nil {
		st.Maxmemory, st.MaxmemoryKnown = v, true
	}
	switch info["aof_enabled"] {
	case "1":
		st.AOF = "yes"
	case "0":
		st.AOF = "no"
	}
}

func joinHostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// configGet returns a CONFIG GET parameter's value, "" when the server does
// not know the parameter.
func configGet(run func(string, ...any) (any, error), name string) (string, error) {
	reply, err := run("CONFIG", "GET", name)
	if err != nil {
		return "", err
	}
	arr, ok := reply.([]any)
	if !ok {
		return "", nil
	}
	for i := 0; i+1 < len(arr); i += 2 {
		if k, ok := str(arr[i]); ok && strings.EqualFold(k, name) {
			v, _ := str(arr[i+1])
			return v, nil
		}
	}
	return "", nil
}

func str(v any) (string, bool) {
	switch x := v.(type) {
	case []byte:
		return string(x), true
	case string:
		return x, true
	}
	return "", false
}

// parseTime reads TIME's reply: seconds and microseconds, as bulk strings.
func parseTime(reply any) (time.Time, bool) {
	arr, ok := reply.([]any)
	if !ok || len(arr) != 2 {
		return time.Time{}, false
	}
	var n [2]int64
	for i, v := range arr {
		var err error
		switch x := v.(type) {
		case int64:
			n[i] = x
		default:
			s, ok := str(x)
			if !ok {
				return time.Time{}, false
			}
			if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
				return time.Time{}, false
			}
		}
	}
	if n[1] < 0 || n[1] >= 1e6 {
		return time.Time{}, false
	}
	return time.Unix(n[0], n[1]*1000), true
}

// judgeTogether adds the findings that compare nodes: one server behind two
// addresses, and nodes linked by replication.
func judgeTogether(nodes []NodeStatus) {
	listed := make(map[string]int, len(nodes))
	for i := range nodes {
		listed[strings.ToLower(nodes[i].Addr)] = i
	}
	for i := range nodes {
		a := &nodes[i]
		if !a.Reachable || a.RunID == "" {
			continue
		}
		var same []string
		for j := range nodes {
			if j != i && nodes[j].RunID == a.RunID {
				same = append(same, nodes[j].Addr)
			}
		}
		if len(same) > 0 {
			a.add(CheckSameServer, VerdictError,
				"the same server as %s (run_id %s): it would be counted as %d votes; list each server once",
				strings.Join(same, ", "), shortID(a.RunID), len(same)+1)
		} else {
			a.add(CheckSameServer, VerdictOK, "no other listed address reaches this server")
		}
	}
	for i := range nodes {
		a := &nodes[i]
		if !a.Reachable {
			continue
		}
		if a.ReplID == "" && a.MasterAddr == "" && len(a.Replicas) == 0 && a.Role == "" {
			a.add(CheckReplication, VerdictUnknown, "INFO did not give the replication section")
			continue
		}
		var links []string
		for j := range nodes {
			b := &nodes[j]
			if j == i || (a.RunID != "" && b.RunID == a.RunID) {
				continue // the same server is reported as such
			}
			switch {
			case a.ReplID != "" && b.ReplID == a.ReplID:
				links = append(links, b.Addr+" (same master_replid)")
			case a.MasterAddr != "" && strings.EqualFold(a.MasterAddr, b.Addr):
				links = append(links, b.Addr+" (its master)")
			case contains(a.Replicas, b.Addr):
				links = append(links, b.Addr+" (its replica)")
			}
		}
		if len(links) > 0 {
			a.add(CheckReplication, VerdictError,
				"linked by replication to %s: the nodes hold the same keys, so one grant counts as several votes, and a failover loses locks; use independent masters",
				strings.Join(links, ", "))
		} else {
			a.add(CheckReplication, VerdictOK, "not linked by replication to another listed node")
		}
	}
}

func contains(addrs []string, addr string) bool {
	for _, a := range addrs {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}

// judgeNode adds the findings about the node on its own.
func (lk *Locker) judgeNode(st *NodeStatus) {
	if !st.Checked {
		st.add(CheckReachable, VerdictUnknown, "the node's Pool cannot run commands (no pool.Commander): nothing was checked")
		return
	}
	if !st.Reachable {
		st.add(CheckReachable, VerdictWarning, "unreachable (%s): nothing else was checked, so it may duplicate or replicate another node", st.Error)
		return
	}
	st.add(CheckReachable, VerdictOK, "answered PING in %v", st.Latency.Round(time.Microsecond))
	if st.RunID == "" {
		st.add(CheckSameServer, VerdictUnknown, "INFO did not give run_id: whether another listed address reaches the same server is unknown")
	}
	switch st.Role {
	case "":
		st.add(CheckRole, VerdictUnknown, "INFO did not give the role")
	case "master":
		st.add(CheckRole, VerdictOK, "master")
	default:
		master := ""
		if st.MasterAddr != "" {
			master = " of " + st.MasterAddr
		}
		st.add(CheckRole, VerdictError,
			"a replica%s (role:%s): it refuses lock writes or, if writable, loses them to its master's copy; list independent masters only", master, st.Role)
	}
	switch st.Mode {
	case "":
		st.add(CheckMode, VerdictUnknown, "INFO did not give redis_mode")
	case "standalone":
		st.add(CheckMode, VerdictOK, "standalone")
	case "cluster":
		st.add(CheckMode, VerdictError,
			"a Redis Cluster node: the lock scripts use keys of several hash slots and fail with CROSSSLOT; use standalone servers")
	default:
		st.add(CheckMode, VerdictError, "redis_mode:%s is not a data server", st.Mode)
	}
	lk.judgeVersion(st)
	judgeEviction(st)
	lk.judgePersistence(st)
	judgeClock(st)
}

func (lk *Locker) judgeVersion(st *NodeStatus) {
	if st.Version == "" {
		st.add(CheckVersion, VerdictUnknown, "INFO did not give redis_version")
		return
	}
	major, err := strconv.Atoi(strings.SplitN(st.Version, ".", 2)[0])
	switch {
	case err != nil:
		st.add(CheckVersion, VerdictUnknown, "cannot read redis_version %q", st.Version)
	case major < minMajor:
		st.add(CheckVersion, VerdictError,
			"Redis %s: the lock scripts (ZPOPMIN, writes after TIME) need Redis %d or later", st.Version, minMajor)
	default:
		st.add(CheckVersion, VerdictOK, "Redis %s", st.Version)
	}
}

func judgeEviction(st *NodeStatus) {
	p := st.MaxmemoryPolicy
	switch {
	case p == "":
		st.add(CheckEviction, VerdictUnknown,
			"neither CONFIG GET nor INFO gave maxmemory-policy: if it evicts, a lock can vanish from this node while held")
	case p == "noeviction":
		st.add(CheckEviction, VerdictOK, "noeviction: lock keys are never evicted (writes fail instead when memory is full)")
	case st.MaxmemoryKnown && st.Maxmemory == 0:
		st.add(CheckEviction, VerdictWarning,
			"%s with no maxmemory limit: nothing is evicted now, but once a limit is set lock keys can be evicted while held; set maxmemory-policy noeviction", p)
	default:
		st.add(CheckEviction, VerdictError,
			"%s evicts keys under memory pressure, lock keys included (they all carry a TTL, so volatile-* policies take them too): a held lock silently vanishes from this node; set maxmemory-policy noeviction", p)
	}
}

func (lk *Locker) judgePersistence(st *NodeStatus) {
	// What a crash costs, and what covers it.
	const quarantine = "the restart quarantine (on by default) discards its votes for the longest TTL after it comes back empty, which covers it; without it, delay the node's restarts beyond the longest TTL"
	const verdict = VerdictWarning
	switch {
	case st.AOF == "":
		st.add(CheckPersistence, VerdictUnknown,
			"INFO did not give aof_enabled: treat the node as not durable; %s", quarantine)
	case st.AOF == "no":
		st.add(CheckPersistence, verdict,
			"no AOF: a restart forgets every lock on this node; %s", quarantine)
	case st.Appendfsync == "always":
		st.add(CheckPersistence, VerdictOK, "AOF with appendfsync always: acknowledged locks survive a crash")
	case st.Appendfsync == "":
		st.add(CheckPersistence, VerdictUnknown,
			"AOF is on but CONFIG GET appendfsync was refused: treat the node as not durable, and delay its restarts beyond the longest TTL")
	default:
		// The node keeps its boot marker, so the restart quarantine does
		// not see the loss of the last writes.
		st.add(CheckPersistence, VerdictWarning,
			"AOF with appendfsync %s: a crash loses the last writes (up to a second or more), lock grants included, while the node keeps its other data, so the restart quarantine does not notice; delay restarts beyond the longest TTL or use appendfsync always", st.Appendfsync)
	}
}

func judgeClock(st *NodeStatus) {
	if !st.ClockKnown {
		st.add(CheckClock, VerdictUnknown, "TIME was refused: the node's clock is unknown")
		return
	}
	off := st.ClockOffset
	if off < 0 {
		off = -off
	}
	dir := "ahead of"
	if st.ClockOffset < 0 {
		dir = "behind"
	}
	if off-st.ClockUncertainty > clockWarnOffset {
		st.add(CheckClock, VerdictWarning,
			"clock %v %s this client's (±%v): Redlock needs no synchronised clocks, but a clock this far off is not kept by NTP and tends to be stepped later, and a forward step expires locks early on this node",
			off.Round(time.Millisecond), dir, st.ClockUncertainty.Round(time.Microsecond))
		return
	}
	st.add(CheckClock, VerdictOK, "clock %v %s this client's (±%v)",
		off.Round(time.Microsecond), dir, st.ClockUncertainty.Round(time.Microsecond))
}
