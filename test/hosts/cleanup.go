package hosts

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// teardown removes everything the Net made: processes left in its
// namespaces or its engines' cgroups, the namespaces (and with them the
// veths), the bridge, the firewall rule and the files. Failures are
// logged; the next New's sweep retries what was left.
func (n *Net) teardown() {
	for i := len(n.hosts) - 1; i >= 0; i-- {
		h := n.hosts[i]
		for _, e := range h.engines {
			e.stop()
		}
		killNamespace(h.NS)
		if err := run("ip", "netns", "del", h.NS); err != nil {
			n.t.Logf("hosts cleanup: %v", err)
		}
		_ = run("ip", "link", "del", h.veth) // gone with the namespace, unless the move failed
	}
	if err := run("ip", "link", "del", n.Bridge); err != nil {
		n.t.Logf("hosts cleanup: %v", err)
	}
	if n.rule != nil {
		if err := run("iptables", append([]string{"-w", "-D"}, n.rule...)...); err != nil {
			n.t.Logf("hosts cleanup: %v", err)
		}
	}
	if err := removeTree(n.dir); err != nil {
		n.t.Logf("hosts cleanup: %v", err)
	}
}

// killNamespace SIGKILLs every process in the namespace: only this
// package's processes run there.
func killNamespace(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// killCgroup SIGKILLs every process whose cgroup path holds parent (an
// engine's --cgroup-parent): the engine's containers.
func killCgroup(parent string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "/"+parent) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeCgroup removes the cgroup directories named parent (and those
// under it) in every hierarchy, once the processes in them are gone.
func removeCgroup(parent string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
	if d := "/sys/fs/cgroup/" + parent; dirExists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- { // children first
			_ = syscall.Rmdir(sub[i])
		}
	}
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// removeTree detaches every mount under dir (an engine's volumes, shm,
// namespaces), deepest first, then removes it.
func removeTree(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	return os.RemoveAll(dir)
}

// Names made by a process: ah<pid><k>... for links and namespaces,
// atoll-hosts <pid> for firewall rules, <pid>-<k> for directories.
var (
	leftoverName = regexp.MustCompile(`^` + namePrefix + `([0-9]+)[a-z]`)
	leftoverRule = regexp.MustCompile(`--comment "?` + ruleTag + ` ([0-9]+)"?`)
	leftoverDir  = regexp.MustCompile(`^([0-9]+)-[0-9]+$`)
	leftoverCg   = regexp.MustCompile(`^` + ruleTag + `-([0-9]+)-`)
)

// gone says whether the process that made a name no longer runs.
func gone(m []string) bool {
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid == os.Getpid() {
		return false
	}
	err = syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// sweep removes what runs of this package left behind when they were
// killed before their cleanup: their engines' containers, namespaces and
// what runs in them, links, firewall rules and directories.
func sweep(t T) {
	var swept []string
	if ents, err := os.ReadDir("/sys/fs/cgroup/pids"); err == nil { // cgroup v1
		for _, e := range ents {
			if gone(leftoverCg.FindStringSubmatch(e.Name())) {
				killCgroup(e.Name())
				removeCgroup(e.Name())
				swept = append(swept, "cgroup "+e.Name())
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && gone(leftoverName.FindStringSubmatch(f[0])) {
				killNamespace(f[0])
				_ = run("ip", "netns", "del", f[0])
				swept = append(swept, "netns "+f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if gone(leftoverName.FindStringSubmatch(name)) {
				_ = run("ip", "link", "del", name)
				swept = append(swept, "link "+name)
			}
		}
	}
	for _, chain := range []string{"DOCKER-USER", "FORWARD"} {
		out, err := exec.Command("iptables", "-w", "-S", chain).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if !gone(leftoverRule.FindStringSubmatch(line)) || !strings.HasPrefix(line, "-A ") {
				continue
			}
			if err := run("iptables", append([]string{"-w", "-D"}, splitRule(line[3:])...)...); err == nil {
				swept = append(swept, "rule "+line)
			}
		}
	}
	if ents, err := os.ReadDir(baseDir); err == nil {
		for _, e := range ents {
			if e.IsDir() && gone(leftoverDir.FindStringSubmatch(e.Name())) {
				_ = removeTree(filepath.Join(baseDir, e.Name()))
				swept = append(swept, "dir "+e.Name())
			}
		}
	}
	if len(swept) > 0 {
		t.Logf("hosts: removed leftovers of killed runs: %s", strings.Join(swept, "; "))
	}
}

// splitRule splits an iptables -S line into arguments, keeping a quoted
// comment whole.
func splitRule(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
