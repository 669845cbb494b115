package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/quorumlock/quorumlock/redlock"
)

const resetHelp = `usage: redlock reset NAME [--timeout 30s] [--nodes URL,URL,...] [--prefix P]
       redlock reset --all --yes [--timeout 30s] [--nodes URL,URL,...] [--prefix P]

Force-releases the lock called NAME on every node, whoever holds it, or with
--all every key under the key prefix (every lock of every name), and reports
how many keys each node removed. --all scans each node incrementally (SCAN,
never KEYS) and deletes in batches.

This breaks mutual exclusion: a current holder is not told, and goes on as
if it held the lock until its next renewal fails, while another owner may
obtain it. Use it only for locks whose holders are known to be gone.

Exit status: 0 when every node answered, 1 when a node failed (the lock may
remain there), 2 for bad flags or node URLs.

Examples:
  redlock reset nightly-report --nodes redis://10.0.0.1:6379,redis://10.0.0.2:6379,redis://10.0.0.3:6379
  REDLOCK_NODES=redis://127.0.0.1:6379 redlock reset --all --yes
`

func (c *cli) reset(args []string) int {
	cmd := c.newCommand("reset", resetHelp)
	nf := cmd.addNodeFlags()
	all := cmd.fs.Bool("all", false, "remove every lock under the key prefix (requires --yes)")
	yes := cmd.fs.Bool("yes", false, "confirm --all")
	timeout := cmd.fs.Duration("timeout", 30*time.Second, "how long to wait for the nodes")
	pos, status, ok := cmd.parse(args, true)
	if !ok {
		return status
	}
	switch {
	case *all && len(pos) > 0:
		return cmd.usageError("give either a lock NAME or --all, not both")
	case *all && !*yes:
		return cmd.usageError("--all removes every lock under the prefix %q on every node, breaking mutual exclusion for their holders; add --yes to confirm", nf.prefix)
	case !*all && len(pos) != 1:
		return cmd.usageError("want exactly one lock NAME (or --all --yes), got %d arguments", len(pos))
	case !*all && pos[0] == "":
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
	var rep redlock.ResetReport
	what := fmt.Sprintf("of lock %q", pos0(pos))
	if *all {
		what = fmt.Sprintf("under prefix %q", nf.prefix)
		rep, err = lk.ResetAll(ctx)
	} else {
		rep, err = lk.Reset(ctx, pos[0])
	}
	if rep.Nodes == nil {
		return cmd.fail(exitFailed, "%v", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	failed := 0
	for _, n := range rep.Nodes {
		if n.Err != nil {
			failed++
			fmt.Fprintf(tw, "%s\tremoved %d\terror: %v\n", n.Addr, n.Deleted, n.Err)
		} else {
			fmt.Fprintf(tw, "%s\tremoved %d\n", n.Addr, n.Deleted)
		}
	}
	_ = tw.Flush()
	fmt.Fprintf(c.stdout, "removed %d keys %s on %d of %d nodes", rep.Deleted(), what, len(rep.Nodes)-failed, len(rep.Nodes))
	if failed > 0 {
		fmt.Fprintf(c.stdout, "; %d nodes failed and may still hold them\n", failed)
		return exitFailed
	}
	fmt.Fprintln(c.stdout)
	return exitOK
}

func pos0(pos []string) string {
	if len(pos) == 0 {
		return ""
	}
	return pos[0]
}
