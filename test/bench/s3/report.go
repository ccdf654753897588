package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// results maps a row key to its per-round values.
type results map[string][]float64

func (r results) record(round int, key string, v float64, unit, detail string) {
	r[key] = append(r[key], v)
	line := fmt.Sprintf("round %d  %-19s %8.1f %s", round, key, v, unit)
	if detail != "" {
		line += "  (" + detail + ")"
	}
	benchkit.Logf("%s", line)
}

// row is one line of the report. Its ratios divide its median by the
// medians of the rows named in bases; short names a row in those ratios.
type row struct {
	scenario, key, short, title, unit string
	bases                             []string
}

func rows(cfg config) []row {
	size := fmt.Sprintf("%d MiB", cfg.sizeMiB)
	n := cfg.memUploads
	return []row{
		{scenario: "push", key: "push-unsigned", short: "limit", unit: "MB/s",
			title: "push " + size + ": minio-go PutObject, DisableContentSha256 (the limit)"},
		{scenario: "push", key: "push-default", short: "default", unit: "MB/s", bases: []string{"push-unsigned"},
			title: "  minio-go PutObject, default options"},
		{scenario: "push", key: "push-atoll", unit: "MB/s", bases: []string{"push-unsigned", "push-default"},
			title: "  atoll: POST + streamed PUT ?digest="},
		{scenario: "pull", key: "pull-minio", short: "limit", unit: "MB/s",
			title: "pull " + size + ": minio-go GetObject (the limit)"},
		{scenario: "pull", key: "pull-atoll-cold", unit: "MB/s", bases: []string{"pull-minio"},
			title: "  atoll, 1st read (fills its disk cache from MinIO)"},
		{scenario: "pull", key: "pull-atoll-warm", unit: "MB/s", bases: []string{"pull-minio"},
			title: "  atoll, 2nd read (from its disk cache)"},
		{scenario: "memory", key: "mem-per-upload", unit: "MiB",
			title: fmt.Sprintf("memory: %d concurrent %d MiB uploads, (peak VmRSS - idle) / %d", n, cfg.memMiB, n)},
		{scenario: "memory", key: "mem-hwm-per-upload", unit: "MiB",
			title: fmt.Sprintf("  (VmHWM - idle) / %d, the kernel's peak", n)},
		{scenario: "memory", key: "mem-idle", unit: "MiB", title: "  idle VmRSS of a fresh atoll"},
		{scenario: "memory", key: "mem-peak", unit: "MiB", title: fmt.Sprintf("  peak VmRSS, sampled every %s", cfg.sample)},
		{scenario: "memory", key: "mem-mbps", unit: "MB/s", title: "  aggregate rate of the uploads"},
	}
}

// printReport writes the table of medians; nothing here fails the run.
func printReport(w io.Writer, cfg config, res results, load0 string) {
	fmt.Fprintf(w, "\nbench-s3: atoll on MinIO vs minio-go on the same MinIO; %d round(s); %d CPU(s)\n"+
		"MB = 10^6 bytes, MiB = 2^20; ratio = median / median of the named row (higher is better)\n", cfg.rounds, runtime.NumCPU())
	fmt.Fprintf(w, "load average (1m 5m 15m) at start: %s, at end: %s\n\n", load0, benchkit.Loadavg())
	all := rows(cfg)
	short := map[string]string{}
	for _, r := range all {
		short[r.key] = r.short
	}
	t := benchkit.NewTable(w, "scenario", "unit", "n", "median", "min..max", "ratio")
	for _, r := range all {
		if !cfg.has(r.scenario) {
			continue
		}
		vs := res[r.key]
		if len(vs) == 0 {
			t.Row(r.title, r.unit, "0", "-", "-", "-")
			continue
		}
		m := benchkit.Median(vs)
		var ratios []string
		for _, base := range r.bases {
			ratios = append(ratios, fmt.Sprintf("%.2fx %s", m/benchkit.Median(res[base]), short[base]))
		}
		ratio := strings.Join(ratios, ", ")
		if ratio == "" {
			ratio = "-"
		}
		t.Row(r.title, r.unit, strconv.Itoa(len(vs)), fmt.Sprintf("%.1f", m),
			fmt.Sprintf("%.1f..%.1f", slices.Min(vs), slices.Max(vs)), ratio)
	}
	t.Flush()
	fmt.Fprintln(w, "\nper-round values are in the progress log (stderr). minio-go gets a bytes.Reader, so it sends")
	fmt.Fprintln(w, "16 MiB parts 4 at a time; atoll gets one HTTP stream. Pulled bytes are sha256-checked after the")
	fmt.Fprintln(w, "timer. Memory rounds each use a freshly started atoll. All processes share this machine.")
}
