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

// verdict compares a ratio with the target ratio, for reference only.
func verdict(ratio, goal float64) string {
	switch {
	case math.IsNaN(ratio):
		return ""
	case ratio >= goal:
		return "met"
	default:
		return "below target"
	}
}

// printReport writes the table of medians. Targets are printed for
// reference; nothing here fails the run.
func printReport(w io.Writer, cfg config, registries []string, scens []scenario, res results) {
	fmt.Fprintf(w, "\nbench: medians of %d round(s); %d MiB blobs, %d MiB chunks; manifest GET: wrk -t%d -c%d -d%s\n",
		cfg.rounds, cfg.sizeMiB, cfg.chunkMiB, cfg.threads, cfg.connections, cfg.duration)
	fmt.Fprintf(w, "registries: %v (MB = 10^6 bytes; ratio = atoll/distribution, higher is better for atoll)\n\n", registries)

	t := benchkit.NewTable(w, "scenario", "unit", "atoll", "distribution", "ratio", "target")
	for _, sc := range scens {
		a := res.median(sc.key, nameAtoll, value)
		d := res.median(sc.key, nameDistribution, value)
		ratio := a / d
		t.Row(sc.title, sc.unit, cell(a, "%.1f"), cell(d, "%.1f"), cell(ratio, "%.2fx"),
			strings.TrimSpace(sc.target+" "+verdict(ratio, sc.goal)))
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
		t.Row(sc.title+" p99", "ms", cell(ap, "%.2f"), cell(dp, "%.2f"), "-",
			strings.TrimSpace("atoll < "+fmtLatency(p99Target)+" "+note))
	}
	t.Flush()
	fmt.Fprintln(w, "\nper-round values are in the progress log (stderr); targets are for reference only.")
}
