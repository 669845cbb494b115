// Command redlock runs a command under a distributed lock held on a quorum of
// independent Redis nodes, shows and resets locks, and demonstrates what the
// lock is for.
//
// Usage:
//
//	redlock demo                                   # 5 local redis-servers, the oversell scenario
//	redlock run --name NAME [--ttl 30s] [--wait 1m | --no-wait] -- CMD ARGS...
//	redlock status NAME [--json]
//	redlock reset NAME | redlock reset --all --yes
//
// Nodes are given with --nodes URL,URL,... or the REDLOCK_NODES environment
// variable (redis://[user:pass@]host:port[/db], rediss:// for TLS). Every
// subcommand documents itself with --help. Exit statuses are listed in
// exitcodes.go and by "redlock help".
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(c.main(os.Args[1:]))
}

// cli is the command line tool; its fields are the process's environment, so
// that each subcommand reads them from one place.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// subcommand is one verb of the tool.
type subcommand struct {
	name    string
	summary string
	run     func(c *cli, args []string) int
}

func subcommands() []subcommand {
	return []subcommand{
		{"run", "run a command while holding a lock, renewing it, and release it at exit", (*cli).run},
		{"status", "show who holds a lock on each node and whether a quorum does", (*cli).status},
		{"reset", "force-release one lock, or every lock, on every node", (*cli).reset},
		{"demo", "start 5 local Redis nodes and show the lock preventing an oversell", (*cli).demo},
	}
}

func (c *cli) main(args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return c.main([]string{args[1], "--help"})
		}
		c.usage(c.stdout)
		return exitOK
	}
	for _, sc := range subcommands() {
		if sc.name == args[0] {
			return sc.run(c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "redlock: unknown command %q (commands: %s; see redlock --help)\n", args[0], commandNames())
	return exitUsage
}

func commandNames() string {
	var names []string
	for _, sc := range subcommands() {
		names = append(names, sc.name)
	}
	return strings.Join(names, ", ")
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "redlock: a lock held on a quorum of independent Redis nodes (Redlock)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: redlock COMMAND [flags] [args]")
	fmt.Fprintln(w)
	for _, sc := range subcommands() {
		fmt.Fprintf(w, "  %-7s %s\n", sc.name, sc.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Nodes: --nodes URL,URL,... or REDLOCK_NODES (redis://[user:pass@]host:port[/db], rediss:// for TLS).")
	fmt.Fprintln(w, "Run \"redlock COMMAND --help\" for a command's flags and examples.")
	fmt.Fprintln(w)
	fmt.Fprint(w, exitStatusHelp)
}
