package main

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// wrkResult is what the harness takes from wrk's --latency report.
type wrkResult struct {
	rps          float64
	p99          time.Duration
	requests     int64
	non2xx       int64
	socketErrors string // wrk's "Socket errors:" line, if any
}

var (
	reRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reP99      = regexp.MustCompile(`(?m)^\s+99(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	reRequests = regexp.MustCompile(`(?m)^\s+([0-9]+) requests in `)
	reNon2xx   = regexp.MustCompile(`(?m)^\s+Non-2xx or 3xx responses:\s+([0-9]+)`)
	reSockErr  = regexp.MustCompile(`(?m)^\s+(Socket errors:.*)$`)
)

// runWrk runs `wrk -tT -cC -dD --latency -H header url` and parses its
// report. Any non-2xx/3xx response fails the round; socket errors (e.g.
// timeouts under load) are only reported.
func runWrk(ctx context.Context, cfg config, url, header string) (wrkResult, error) {
	secs := int(math.Ceil(cfg.duration.Seconds()))
	args := []string{
		"-t" + strconv.Itoa(cfg.threads),
		"-c" + strconv.Itoa(cfg.connections),
		"-d" + strconv.Itoa(secs) + "s",
		"--latency",
		"-H", header,
		url,
	}
	out, err := exec.CommandContext(ctx, cfg.wrkBin, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("%w; wrk output:\n%s", err, out)
	}
	if res.non2xx > 0 {
		return res, fmt.Errorf("wrk: %d of %d responses were not 2xx/3xx", res.non2xx, res.requests)
	}
	if res.socketErrors != "" {
		benchkit.Logf("wrk: %s", res.socketErrors)
	}
	return res, nil
}

func parseWrk(out string) (wrkResult, error) {
	var res wrkResult
	m := reRPS.FindStringSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("wrk: no Requests/sec line")
	}
	rps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return res, fmt.Errorf("wrk: Requests/sec %q: %w", m[1], err)
	}
	res.rps = rps
	m = reP99.FindStringSubmatch(out)
	if m == nil {
		return res, fmt.Errorf("wrk: no 99%% latency line (was --latency passed?)")
	}
	if res.p99, err = parseWrkDuration(m[1], m[2]); err != nil {
		return res, err
	}
	if m = reRequests.FindStringSubmatch(out); m != nil {
		res.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if res.requests == 0 {
		return res, fmt.Errorf("wrk: no request completed")
	}
	if m = reNon2xx.FindStringSubmatch(out); m != nil {
		res.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = reSockErr.FindStringSubmatch(out); m != nil {
		res.socketErrors = strings.TrimSpace(m[1])
	}
	return res, nil
}

// parseWrkDuration converts wrk's "<number><unit>" latency (us, ms, s, m, h).
func parseWrkDuration(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("wrk: latency %q: %w", num+unit, err)
	}
	scale := map[string]time.Duration{
		"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second,
		"m": time.Minute, "h": time.Hour,
	}[unit]
	return time.Duration(v * float64(scale)), nil
}
