package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// p99Target is the spec's bound on atoll's manifest GET p99 latency.
const p99Target = 5 * time.Millisecond

// results maps scenario key -> registry name -> per-round measurements.
type results map[string]map[string][]measurement

func (r results) add(scenario, registry string, m measurement) {
	if r[scenario] == nil {
		r[scenario] = map[string][]measurement{}
	}
	r[scenario][registry] = append(r[scenario][registry], m)
}

// median of one field over the rounds; NaN when there are none.
func (r results) median(scenario, registry string, field func(measurement) float64) float64 {
	ms := r[scenario][registry]
	vs := make([]float64, len(ms))
	for i, m := range ms {
		vs[i] = field(m)
	}
	return benchkit.Median(vs)
}

func value(m measurement) float64 { return m.value }

func p99ms(m measurement) float64 { return float64(m.p99) / float64(time.Millisecond) }

func fmtLatency(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func cell(v float64, format string) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// spread is "median (min-max)" of a scenario's rounds for one registry.
func (r results) spread(scenario, registry string) string {
	ms := r[scenario][registry]
	if len(ms) == 0 {
		return "-"
	}
	lo, hi := ms[0].value, ms[0].value
	for _, m := range ms {
		lo, hi = min(lo, m.value), max(hi, m.value)
	}
	return fmt.Sprintf("%.0f (%.0f-%.0f)", r.median(scenario, registry, value), lo, hi)
}

// verdict compares a ratio with the target ratio, for reference only.
func verdict(ratio, goal float64) string {
	switch {
	case math.IsNaN(ratio) || goal == 0:
		return ""
	case ratio >= goal:
		return "met"
	default:
		return "below target"
	}
}

// printReport writes the table of medians with their spread and ratios.
// Targets are printed for reference; nothing here fails the run.
func printReport(w io.Writer, cfg config, registries []string, scens []scenario, res results) {
	fmt.Fprintf(w, "\nbench: medians (min-max) of %d alternating round(s); %d MiB blob streamed from a file, %d MiB chunks; manifest GET: wrk -t%d -c%d -d%s; load average %s\n",
		cfg.rounds, cfg.sizeMiB, cfg.chunkMiB, cfg.threads, cfg.connections, cfg.duration, benchkit.Loadavg())
	fmt.Fprintf(w, "registries: %v (MB = 10^6 bytes; x/distribution and x/reference are atoll's ratios; the machine may be shared: quote medians and ratios)\n\n", registries)

	t := benchkit.NewTable(w, "scenario", "unit", "atoll", "distribution", "x/distribution", "x/reference", "target")
	for _, sc := range scens {
		if sc.reference {
			t.Row(sc.title+" (reference)", sc.unit, res.spread(sc.key, nameReference), "-", "-", "-", "")
			continue
		}
		a := res.median(sc.key, nameAtoll, value)
		vsDist := a / res.median(sc.key, nameDistribution, value)
		ratio, refCell := vsDist, "-"
		if sc.versus != "" { // the reference measured in this scenario's rounds
			ref := res.median(sc.key, nameReference, value)
			if !sc.versusShown {
				ratio = a / ref
			}
			refCell = cell(ratio, "%.2fx") + " of " + sc.versus + " " + res.spread(sc.key, nameReference)
		}
		t.Row(sc.title, sc.unit, res.spread(sc.key, nameAtoll), res.spread(sc.key, nameDistribution),
			cell(vsDist, "%.2fx"), refCell, strings.TrimSpace(sc.target+" "+verdict(ratio, sc.goal)))
		if sc.key != "manifest-get" {
			continue
		}
		ap := res.median(sc.key, nameAtoll, p99ms)
		dp := res.median(sc.key, nameDistribution, p99ms)
		note := ""
		switch {
		case math.IsNaN(ap):
		case ap < p99ms(measurement{p99: p99Target}):
			note = "met"
		default:
			note = "above target"
		}
		t.Row(sc.title+" p99", "ms", cell(ap, "%.2f"), cell(dp, "%.2f"), "-", "-",
			strings.TrimSpace("atoll < "+fmtLatency(p99Target)+" "+note))
	}
	if sha := res.median("sha256", nameReference, value); !math.IsNaN(sha) {
		for _, key := range []string{"push", "push-chunked"} {
			if a := res.median(key, nameAtoll, value); !math.IsNaN(a) {
				t.Row(key+" vs Go SHA-256", "", "", "", "", cell(a/sha, "%.2fx")+" sha256", "")
			}
		}
	}
	t.Flush()
	fmt.Fprintln(w, "\nper-round values are in the progress log (stderr); targets are for reference only.")
}
