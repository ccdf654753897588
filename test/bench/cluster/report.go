package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// results maps a row key to its per-round values (MB/s unless the row says).
type results map[string][]float64

func (r results) record(round int, key string, v float64, unit, detail string) {
	r[key] = append(r[key], v)
	benchkit.Logf("round %d  %-20s %8.2f %s  (%s)", round, key, v, unit, detail)
}

// row is one line of the report; base names the row its ratio divides by
// (of "a|b", the one with the higher median).
type row struct {
	scenario, key, title, base string
	unit                       string  // "" for MB/s
	goal                       float64 // ratio target, 0 for none
	atMost                     float64 // bound on the median, 0 for none
	target                     string
}

func rows(cfg config) []row {
	size := fmt.Sprintf("%d MiB", cfg.sizeMiB)
	many := fmt.Sprintf("%dx%d MiB, %d pullers", cfg.blobs, cfg.blobMiB, cfg.pullers)
	out := []row{
		{scenario: "pull", key: "pull-r1-owner", title: "pull " + size + ", 3 members R=1, via owner"},
		{scenario: "pull", key: "pull-r1-proxy", title: "  via non-owner, routing proxy", base: "pull-r1-owner", goal: 0.8, target: ">= 0.80x (hop < 20%)"},
		{scenario: "pull", key: "pull-r1-redirect", title: "  via non-owner, routing redirect", base: "pull-r1-owner", goal: 0.95, target: ">= 0.95x (not measurable)"},
		{scenario: "pull", key: "pull-r2-owner", title: "pull " + size + ", 3 members R=2, via owner"},
		{scenario: "pull", key: "pull-r2-proxy", title: "  via non-owner, routing proxy", base: "pull-r2-owner", goal: 0.9, target: ">= 0.90x owner reads"},
		{scenario: "pull", key: "pull-r2-relay-splice", title: "  via a bare TCP relay to the owner, splice", base: "pull-r2-owner", target: "the machine's one-hop bound"},
		{scenario: "pull", key: "pull-r2-relay-copy", title: "  via a bare TCP relay to the owner, 1 MiB copies", base: "pull-r2-owner", target: "the machine's one-hop bound"},
		{scenario: "pull", key: "pull-r2-proxy", title: "  routing proxy / the faster bare relay", base: "pull-r2-relay-splice|pull-r2-relay-copy", target: "1.00x = as good as a bare relay"},
	}
	out = append(out, pushRows(size)...)
	return append(out, []row{
		{scenario: "finalize", key: "finalize-single", unit: "s", title: fmt.Sprintf("final PUT of a %d MiB chunked upload, single node", cfg.finalizeMiB)},
		{scenario: "finalize", key: "finalize-r2-owner", unit: "s", title: "  3 members R=2, via an owner", atMost: 1, target: "<= 1 s"},
		{scenario: "finalize", key: "finalize-r2-nonowner", unit: "s", title: "  3 members R=2, via the non-owner", atMost: 1, target: "<= 1 s"},
		{scenario: "conns", key: "conns-200-gets", unit: "conns", title: "connections opened by 200 GETs via the non-owner (R=2)", atMost: 4, target: "<= 4 (pooled)"},
		{scenario: "pullers", key: "pullers-single", title: "pullers " + many + ", single node"},
		{scenario: "pullers", key: "pullers-cluster", title: "  3 members R=2 proxy, round-robin", base: "pullers-single"},
	}...)
}

// printReport writes the table of medians. Targets are printed for
// reference only; nothing here fails the run.
func printReport(w io.Writer, cfg config, res results, load0 string) {
	fmt.Fprintf(w, "\nbench-cluster: %d round(s); n = samples per row (pulls: 2 per round and cluster); %d CPU(s)\n"+
		"MB = 10^6 bytes; ratio = median / median of the row it is indented under\n", cfg.rounds, runtime.NumCPU())
	fmt.Fprintf(w, "load average (1m 5m 15m) at start: %s, at end: %s\n\n", load0, benchkit.Loadavg())
	t := benchkit.NewTable(w, "scenario", "n", "median", "unit", "min..max", "ratio", "target")
	for _, r := range rows(cfg) {
		if !cfg.has(r.scenario) {
			continue
		}
		vs := res[r.key]
		unit := r.unit
		if unit == "" {
			unit = "MB/s"
		}
		if len(vs) == 0 {
			t.Row(r.title, "0", "-", unit, "-", "-", r.target)
			continue
		}
		m := benchkit.Median(vs)
		ratio, verdict := "-", ""
		if r.base != "" {
			q := m / baseMedian(res, r.base)
			ratio = fmt.Sprintf("%.2fx", q)
			if r.goal > 0 && !math.IsNaN(q) {
				verdict = map[bool]string{true: " met", false: " missed"}[q >= r.goal]
			}
		}
		if r.atMost > 0 {
			verdict = map[bool]string{true: " met", false: " missed"}[m <= r.atMost]
		}
		t.Row(r.title, strconv.Itoa(len(vs)), fmt.Sprintf("%.2f", m), unit,
			fmt.Sprintf("%.2f..%.2f", slices.Min(vs), slices.Max(vs)), ratio, r.target+verdict)
	}
	t.Flush()
	fmt.Fprintln(w, "\nper-round values are in the progress log (stderr). Owner pulls of the R=1 proxy and redirect")
	fmt.Fprintln(w, "clusters are pooled (routing does not touch them). Pulled blobs are sha256-checked after the")
	fmt.Fprintln(w, "timer; pullers compare each body with the pushed bytes inline. All processes share this machine.")
}

// baseMedian returns the highest median of the rows named in base ("a|b").
func baseMedian(res results, base string) float64 {
	best := math.NaN()
	for _, k := range strings.Split(base, "|") {
		if m := benchkit.Median(res[k]); math.IsNaN(best) || m > best {
			best = m
		}
	}
	return best
}
