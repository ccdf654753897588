package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// statusKiB reads a "Field:   123 kB" line of /proc/<pid>/status (VmRSS,
// VmHWM) of p, in KiB.
func statusKiB(p *benchkit.Proc, field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/status")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.Name, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s in /proc/%d/status", p.Name, field, p.Pid())
}
