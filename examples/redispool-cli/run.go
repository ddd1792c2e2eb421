package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // a runtime failure: unreachable server, error reply, failed operations
	exitUsage = 2 // a bad flag, argument, URL or pool configuration
)

const progName = "redispool-cli"

// A command is one subcommand of the CLI.
type command struct {
	name    string
	args    string // synopsis of the positional arguments
	summary string
	help    string // paragraph printed by "help NAME"
	// flags registers the command's own flags and returns the function
	// that runs it once they are parsed.
	flags func(fs *flag.FlagSet, env *env) func(ctx context.Context, args []string) error
}

var commands = []*command{benchCommand, pingCommand, doCommand, statsCommand}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// env is what a command runs with: the parsed global flags and the
// output streams.
type env struct {
	global
	stdout, stderr io.Writer
	// tty reports whether stdout is a terminal, for live progress.
	tty bool
	// width returns the terminal's width in columns.
	width func() int
}

// usageError marks an error as the caller's: a bad flag or argument. run
// exits with status 2 for it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run is the whole program: it parses args (without the program name),
// runs the command and returns the exit status. Output goes to stdout and
// stderr only; ctx ends the command early, as an interrupt does.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{tty: isTerminal(stdout), width: func() int { return terminalWidth(stdout) }}
	// The pool's logger writes from its own goroutines.
	e.stdout, e.stderr = &lockedWriter{w: stdout}, &lockedWriter{w: stderr}

	// Global flags may come before the command and after it:
	// "--url X bench -c 8" and "bench --url X -c 8" are the same.
	gfs := newFlagSet(progName)
	e.global.register(gfs)
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(e.stdout, gfs)
			return exitOK
		}
		return usageFailure(e.stderr, "", err)
	}
	early := map[string]string{}
	gfs.Visit(func(f *flag.Flag) { early[f.Name] = f.Value.String() })

	rest := gfs.Args()
	if len(rest) == 0 {
		printUsage(e.stderr, gfs)
		return exitUsage
	}
	name, rest := rest[0], rest[1:]
	if name == "help" {
		return help(e, rest)
	}
	cmd := lookup(name)
	if cmd == nil {
		return usageFailure(e.stderr, "", fmt.Errorf("unknown command %q", name))
	}

	fs := newFlagSet(progName + " " + cmd.name)
	e.global = global{}
	e.global.register(fs)
	runCmd := cmd.flags(fs, e)
	for name, value := range early {
		fs.Set(name, value) // cannot fail: it parsed once already
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandUsage(e.stdout, cmd)
			return exitOK
		}
		return usageFailure(e.stderr, cmd.name, err)
	}
	e.global.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { e.global.set[f.Name] = true })

	err := runCmd(ctx, fs.Args())
	var uerr usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &uerr):
		return usageFailure(e.stderr, cmd.name, err)
	case errors.Is(err, errReported):
		return exitError
	default:
		fmt.Fprintf(e.stderr, "%s %s: %v\n", progName, cmd.name, err)
		return exitError
	}
}

func usageFailure(w io.Writer, cmd string, err error) int {
	if cmd == "" {
		fmt.Fprintf(w, "%s: %v\nRun '%s -h' for usage.\n", progName, err, progName)
	} else {
		fmt.Fprintf(w, "%s %s: %v\nRun '%s help %s' for usage.\n", progName, cmd, err, progName, cmd)
	}
	return exitUsage
}

// newFlagSet returns a FlagSet that reports errors to its caller instead
// of printing them: run prints them in one consistent format.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func help(e *env, args []string) int {
	switch {
	case len(args) == 0:
		fs := newFlagSet(progName)
		new(global).register(fs)
		printUsage(e.stdout, fs)
		return exitOK
	case len(args) == 1 && lookup(args[0]) != nil:
		printCommandUsage(e.stdout, lookup(args[0]))
		return exitOK
	default:
		return usageFailure(e.stderr, "", fmt.Errorf("help: unknown command %q", strings.Join(args, " ")))
	}
}

func printUsage(w io.Writer, globals *flag.FlagSet) {
	fmt.Fprintf(w, `%[1]s drives a redispool connection pool: a load generator, a
redis-cli-style command runner and a live view of the pool's statistics.

Usage:
  %[1]s [global flags] COMMAND [flags] [args]

Commands:
`, progName)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Without --url an embedded miniredis is started, so every command runs
anywhere. Global flags may also follow the command. Pool flags override
the URL's query parameters.

Exit status: 0 on success, 1 on a runtime failure, 2 on a usage error.

Global flags:
`)
	printDefaults(w, globals)
	fmt.Fprintf(w, "\nRun '%s help COMMAND' for a command's flags.\n", progName)
}

func printCommandUsage(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace(fmt.Sprintf("%s [global flags] %s [flags] %s", progName, cmd.name, cmd.args)), cmd.help)
	fs := newFlagSet(cmd.name)
	cmd.flags(fs, &env{})
	if hasFlags(fs) {
		fmt.Fprintf(w, "\nFlags:\n")
		printDefaults(w, fs)
	}
	fmt.Fprintf(w, "\nRun '%s -h' for the global flags.\n", progName)
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// printDefaults prints fs's flags with a double dash, as they are
// usually written, sorted by name.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	for _, f := range flags {
		typ, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	}
}

// isTerminal reports whether w is a terminal, where live progress makes
// sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalWidth returns the width of the terminal w writes to, in
// columns, or 80 when that cannot be told.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil && width > 0 {
			return width
		}
	}
	return 80
}

// lockedWriter serializes writes, so that the pool's logger and the
// command can share stderr.
type lockedWriter struct {
	mu sync.Mutex // protects w
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
