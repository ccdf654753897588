package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// machine is what the whole machine's CPUs did so far (/proc/stat), to
// tell a run slowed by what else ran, or by the hypervisor, from one slowed
// by the store: busy is the time all CPUs ran anything (ours included),
// steal the time the hypervisor gave them to other guests.
type machine struct {
	busy, steal, wall time.Duration
}

// userHZ is the unit of /proc/stat: 100 a second on every Linux that Go
// supports.
const userHZ = 100

func readMachine() machine {
	m := machine{wall: time.Duration(time.Now().UnixNano())}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return m
	}
	// cpu user nice system idle iowait irq softirq steal ...
	fields := strings.Fields(sc.Text())
	tick := func(i int) time.Duration {
		if i >= len(fields) {
			return 0
		}
		n, _ := strconv.ParseInt(fields[i], 10, 64)
		return time.Duration(n) * time.Second / userHZ
	}
	m.busy = tick(1) + tick(2) + tick(3) + tick(6) + tick(7)
	m.steal = tick(8)
	return m
}

func (m machine) since(before machine) machine {
	return machine{busy: m.busy - before.busy, steal: m.steal - before.steal, wall: m.wall - before.wall}
}

func (m machine) plus(n machine) machine {
	return machine{busy: m.busy + n.busy, steal: m.steal + n.steal, wall: m.wall + n.wall}
}

// others describes what ran besides us over m, when we took cpu: the
// other processes' CPU and the steal, in cores.
func (m machine) others(cpu time.Duration) string {
	if m.wall <= 0 {
		return "machine ?"
	}
	return fmt.Sprintf("others %.2f cores, steal %.2f", max(0, (m.busy-cpu).Seconds())/m.wall.Seconds(), m.steal.Seconds()/m.wall.Seconds())
}

// residency reports how much of the file at path the page cache holds
// and how much of it this process maps (RssFile): what a read that misses
// the manifest cache finds in memory.
func residency(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("file %s, mapped resident %s; anonymous huge pages %s", mib(float64(fi.Size())),
		mib(float64(statusKB("/proc/self/status", "RssFile:"))), mib(float64(statusKB("/proc/self/smaps_rollup", "AnonHugePages:"))))
}

// statusKB reads field (with its colon) of a /proc file in kB, in bytes;
// -1 when missing.
func statusKB(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
