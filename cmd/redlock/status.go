package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

const statusHelp = `usage: redlock status NAME [--json] [--timeout 5s] [--nodes URL,URL,...] [--prefix P]

Shows, for each node, whether it holds the lock called NAME, with which token
(shortened), for how much longer, and how fast the node answered; then
whether one token holds it on a quorum of the nodes; then the node checks
(same server listed twice, replicas, eviction policy, persistence, clock
offset: see Locker.Check). Nothing is changed.

Exit status: 0 held on a quorum, 3 not held on a quorum, 4 too few nodes
answered to tell, 2 bad flags or node URLs.

Examples:
  redlock status nightly-report --nodes redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379
  export REDLOCK_NODES=redis://:secret@10.0.0.1:6379,rediss://10.0.0.2:6380,redis://10.0.0.3:6379
  redlock status nightly-report --json | jq .verdict
  redlock status nightly-report >/dev/null && echo "someone is running it"
`

// shortToken is how many characters of a token status shows: enough to tell
// holders apart, short enough for a table.
const shortToken = 8

func short(token string) string {
	if len(token) > shortToken {
		return token[:shortToken]
	}
	return token
}

func (c *cli) status(args []string) int {
	cmd := c.newCommand("status", statusHelp)
	nf := cmd.addNodeFlags()
	asJSON := cmd.fs.Bool("json", false, "print the report as JSON")
	timeout := cmd.fs.Duration("timeout", 5*time.Second, "how long to wait for the nodes")
	pos, status, ok := cmd.parse(args, true)
	if !ok {
		return status
	}
	switch {
	case len(pos) != 1:
		return cmd.usageError("want exactly one lock NAME, got %d arguments", len(pos))
	case pos[0] == "":
		return cmd.usageError("empty lock name")
	case *timeout <= 0:
		return cmd.usageError("--timeout must be positive")
	}
	lk, _, closeAll, err := cmd.open(nf)
	if err != nil {
		return cmd.usageError("%v", err)
	}
	defer closeAll()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	in, err := lk.Inspect(ctx, pos[0])
	if err != nil && in.Nodes == nil {
		return cmd.fail(exitFailed, "%v", err)
	}
	// A timeout leaves the nodes that did not answer with its error: the
	// report shows them as failed.
	rep := newStatusReport(in)
	// What INFO or CONFIG will not tell is "unknown" in the report, never a
	// failure of the command.
	if checks, _ := lk.Check(ctx); checks != nil {
		rep.Checks = checks
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return cmd.fail(exitFailed, "%v", err)
		}
	} else {
		rep.print(c.stdout)
	}
	switch rep.Verdict {
	case "held":
		return exitOK
	case "free":
		return exitFree
	}
	return exitUnknown
}

// statusReport is what status prints; its JSON form is the --json output.
type statusReport struct {
	Name        string       `json:"name"`
	Key         string       `json:"key"`
	Quorum      int          `json:"quorum"`
	Verdict     string       `json:"verdict"` // held, free or unknown
	Holder      string       `json:"holder,omitempty"`
	HolderNodes int          `json:"holder_nodes"`
	HolderTTLms *int64       `json:"holder_ttl_ms,omitempty"`
	Answered    int          `json:"answered"`
	Nodes       []nodeStatus `json:"nodes"`
	// Checks is the node report (Locker.Check): what the quorum's safety
	// rests on, node by node.
	Checks *redlock.NodeReport `json:"checks,omitempty"`
}

type nodeStatus struct {
	Addr      string  `json:"addr"`
	Held      bool    `json:"held"`
	Token     string  `json:"token,omitempty"`
	TTLms     *int64  `json:"ttl_ms,omitempty"` // -1: no expiry
	LatencyMs float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

func newStatusReport(in redlock.Inspection) statusReport {
	r := statusReport{Name: in.Name, Key: in.Key, Quorum: in.Quorum, Verdict: "unknown"}
	switch {
	case in.Held():
		r.Verdict = "held"
	case in.Settled():
		r.Verdict = "free"
	}
	r.Holder, r.HolderNodes = in.Holder()
	if d, ok := in.HolderTTL(); ok {
		ms := d.Milliseconds()
		r.HolderTTLms = &ms
	}
	for _, s := range in.Nodes {
		ns := nodeStatus{Addr: s.Addr, Held: s.Held, LatencyMs: float64(s.Latency.Microseconds()) / 1000}
		if s.Err != nil {
			ns.Error = s.Err.Error()
		} else {
			r.Answered++
		}
		if s.Held {
			ns.Token = s.Token
			ms := s.TTL.Milliseconds()
			if s.TTL < 0 {
				ms = -1
			}
			ns.TTLms = &ms
		}
		r.Nodes = append(r.Nodes, ns)
	}
	return r
}

func (r statusReport) print(w io.Writer) {
	fmt.Fprintf(w, "lock %q (key %s) on %d nodes, quorum %d\n", r.Name, r.Key, len(r.Nodes), r.Quorum)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHOLDER\tTTL\tLATENCY")
	for _, n := range r.Nodes {
		switch {
		case n.Error != "":
			fmt.Fprintf(tw, "%s\terror: %s\n", n.Addr, n.Error)
		case n.Held:
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Addr, short(n.Token), ttlText(*n.TTLms), latencyText(n.LatencyMs))
		default:
			fmt.Fprintf(tw, "%s\t-\t-\t%s\n", n.Addr, latencyText(n.LatencyMs))
		}
	}
	_ = tw.Flush()
	switch r.Verdict {
	case "held":
		fmt.Fprintf(w, "HELD by %s on %d of %d nodes (quorum %d)", short(r.Holder), r.HolderNodes, len(r.Nodes), r.Quorum)
		if r.HolderTTLms != nil {
			fmt.Fprintf(w, ", expires in %s unless renewed", ttlText(*r.HolderTTLms))
		}
		fmt.Fprintln(w)
	case "free":
		if r.HolderNodes > 0 {
			fmt.Fprintf(w, "FREE: not held on a quorum (at most %d of %d nodes hold one token, quorum %d)\n", r.HolderNodes, len(r.Nodes), r.Quorum)
		} else {
			fmt.Fprintf(w, "FREE: no node holds it\n")
		}
	default:
		fmt.Fprintf(w, "UNKNOWN: %d of %d nodes answered; the others could make a quorum of %d\n", r.Answered, len(r.Nodes), r.Quorum)
	}
	if r.Checks != nil {
		fmt.Fprintf(w, "\nnode checks:\n%s", r.Checks)
	}
}

func ttlText(ms int64) string {
	if ms < 0 {
		return "no expiry"
	}
	return round(time.Duration(ms) * time.Millisecond).String()
}

func latencyText(ms float64) string {
	return round(time.Duration(ms * float64(time.Millisecond))).String()
}
