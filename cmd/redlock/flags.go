package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is a subcommand's flag set and its help text.
type command struct {
	c    *cli
	name string
	fs   *flag.FlagSet
	// help is printed by --help before the flags; it holds the synopsis
	// and the examples.
	help string
}

func (c *cli) newCommand(name, help string) *command {
	fs := flag.NewFlagSet("redlock "+name, flag.ContinueOnError)
	// flag's own messages are a line plus the whole usage; ours are one
	// line, printed by parse.
	fs.SetOutput(io.Discard)
	return &command{c: c, name: name, fs: fs, help: help}
}

// usage prints the help text and the flags.
func (cmd *command) usage(w io.Writer) {
	fmt.Fprint(w, strings.TrimLeft(cmd.help, "\n"))
	fmt.Fprintln(w, "\nFlags:")
	// As flag.PrintDefaults, with the double dash the examples use.
	cmd.fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "\n    \t%s", usage)
		switch {
		case f.DefValue == "" || f.DefValue == "false" || f.DefValue == "0":
		case typ == "string":
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		default:
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args. With interleave, flags may follow positional arguments
// (status NAME --json); without, the first positional argument ends the flags
// (run -- CMD --its-own-flag). It returns the positional arguments, or an exit
// status: exitOK after --help, exitUsage after a one-line error.
func (cmd *command) parse(args []string, interleave bool) ([]string, int, bool) {
	var pos []string
	for {
		err := cmd.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			cmd.usage(cmd.c.stdout)
			return nil, exitOK, false
		}
		if err != nil {
			return nil, cmd.usageError("%v", err), false
		}
		rest := cmd.fs.Args()
		if !interleave || len(rest) == 0 {
			return append(pos, rest...), 0, true
		}
		// Parse stops at "--" too; what follows it is positional.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError prints one line naming the command and pointing to its help,
// and returns exitUsage.
func (cmd *command) usageError(format string, args ...any) int {
	fmt.Fprintf(cmd.c.stderr, "redlock %s: %s (see redlock %s --help)\n", cmd.name, fmt.Sprintf(format, args...), cmd.name)
	return exitUsage
}

// fail prints one line naming the command and returns status.
func (cmd *command) fail(status int, format string, args ...any) int {
	fmt.Fprintf(cmd.c.stderr, "redlock %s: %s\n", cmd.name, fmt.Sprintf(format, args...))
	return status
}
