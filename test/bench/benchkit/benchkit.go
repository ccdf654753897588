// Package benchkit holds what the benchmark programs under test/bench share:
// a registry HTTP client (monolithic push, pull), child processes with
// readiness polling and log tails, free loopback ports, random payloads,
// medians and table printing, and the main/round scaffolding.
//
// It reports nothing itself beyond the progress log (stderr); the report
// formats stay with each program.
package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Main runs run with a context that SIGINT and SIGTERM cancel. When run
// fails it prints "<prog>: FAILED: <err>" to stderr (marked as interrupted
// when a signal came first) and exits with status 1.
func Main(prog string, run func(context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("interrupted (%w)", err)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, prog+": FAILED:", err)
		os.Exit(1)
	}
}

// Logf prints progress to stderr, time-stamped, so stdout carries only the
// report.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// RemoveTemp removes dir, or with keep set leaves it and says so.
func RemoveTemp(dir string, keep bool) {
	if keep {
		Logf("kept %s", dir)
	} else if err := os.RemoveAll(dir); err != nil {
		Logf("removing %s: %v", dir, err)
	}
}

// SplitList splits a comma-separated list, dropping blanks and repeats.
func SplitList(list string) []string {
	var out []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// CheckScenarios fails unless selected is non-empty and names only known
// scenarios.
func CheckScenarios(selected, known []string) error {
	if len(selected) == 0 {
		return errors.New("no scenario selected")
	}
	for _, s := range selected {
		if !slices.Contains(known, s) {
			return fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(known, ", "))
		}
	}
	return nil
}

// Rounds runs rounds 1..rounds; each runs the scenarios in names, in that
// order, with their runners. It stops at the first error, prefixed with
// "<scenario> round <n>: ", or when ctx is done.
func Rounds(ctx context.Context, rounds int, names []string, runners map[string]func(context.Context, int) error) error {
	for round := 1; round <= rounds; round++ {
		for _, s := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := runners[s](ctx, round); err != nil {
				return fmt.Errorf("%s round %d: %w", s, round, err)
			}
		}
	}
	return nil
}

// Ordered reverses xs on even rounds, so no variant always goes first.
func Ordered[T any](round int, xs []T) []T {
	if round%2 == 0 {
		slices.Reverse(xs)
	}
	return xs
}
