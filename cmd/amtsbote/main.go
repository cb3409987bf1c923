// Command amtsbote is the federation gateway: one binary for the server (serve), a
// self-contained demonstration (demo), the portal side (submit), the directory
// (lookup, directory), offline checks (verify), keys and benchmarks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/amtsbote/amtsbote/internal/buildstamp"
)

type command struct {
	name  string
	usage string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the gateway (HTTP, embedded NATS, bbolt) on its defaults or a config file", runServe},
		{"demo", "run gateway + demo Fachverfahren of Stadt Dresden and submit the Amt24 example", runDemo},
		{"submit", "build, sign and post an application package as a portal", runSubmit},
		{"lookup", "find the responsible office for a service at a place", runLookup},
		{"directory", "build or check directory data (build | check FILE...)", runDirectory},
		{"verify", "check a signed receipt or package offline and say what it proves", runVerify},
		{"keys", "create the development PKI (keys init; the first serve adds the credentials)", runKeys},
		{"gc", "apply the retention once: remove expired bytes and records, sweep unused blobs", runGC},
		{"admin", "the admin API for the person on call (" + adminVerbNames() + ")", runAdmin},
		{"store", "back up, restore, check, repair the indexes of, or move the durable truth between stores (backup | restore | verify | reindex | export | import)", runStore},
		{"mailbox", "web mailbox helpers (hash: print the password_hash for a user, password on stdin)", runMailbox},
		{"bench", "measure intake and delivery throughput against a loopback gateway", runBench},
		{"version", "print the version and the Go toolchain it was built with", func(_ context.Context, _ []string, out, _ io.Writer) int {
			// The toolchain too: the standard library's vulnerabilities are the
			// binary's (docs/operations.md, "Vulnerabilities").
			bi := buildstamp.Read()
			if bi.GoVersion != "" {
				fmt.Fprintln(out, "amtsbote", bi, "built with", bi.GoVersion)
			} else {
				fmt.Fprintln(out, "amtsbote", bi)
			}
			return 0
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "amtsbote: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// usageExit is the exit code of a command whose flags did not parse: 0 when they
// asked for help (-h, -help, --help; the flag set printed the flags, as asked,
// and `amtsbote -h` exits 0 too), otherwise 2.
func usageExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// isHelp says whether arg asks for help the way the flag package takes it, for
// commands that print their usage before any flag set sees the arguments.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "--h"
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: amtsbote <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.usage)
	}
	fmt.Fprintln(w, "\nRun 'amtsbote <command> -h' for the flags of a command.")
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
