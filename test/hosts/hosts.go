// Package hosts gives tests several hosts on one machine: each host is a
// Linux network namespace with its own address on a bridge the harness
// creates, joined to it by a veth pair. A host can have its link capped
// (tc tbf), cut (as a dead host looks to the others), and partitioned from
// chosen other hosts (iptables DROP inside its namespace); it runs
// processes (Host.Command) or a Docker engine of its own (Host.StartDocker).
//
// Everything the harness makes carries the test process's id in its name:
// the bridge and veths ah<pid><k>..., the namespaces ah<pid><k>-<host>, a
// rule in the host's DOCKER-USER (or FORWARD) chain commented
// "atoll-hosts <pid>", engines' cgroups and files under
// /tmp/atoll-hosts/<pid>-<k>. New removes what it finds of a process that no
// longer runs (a run killed before its cleanup), and the test's cleanup
// removes what this one made, whether it passed or not.
//
// It needs root, iproute2 and iptables. Where the kernel or the privileges
// refuse a step, New skips the test saying which step and why; with CI=true
// in the environment that is a failure instead.
//
// A Net and its hosts are for the test goroutine, except Host.Command and
// the fields, which any goroutine may use.
package hosts

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// T is the part of testing.TB the harness uses: a *testing.T, or a
// benchmark program's own (Fatalf and Skipf must not return).
type T interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// Net is a bridge on the machine and the hosts attached to it.
type Net struct {
	t       T
	prefix  string     // ah<pid><k>: every name made starts with it
	Bridge  string     // the bridge's interface name
	Gateway netip.Addr // the machine's own address on the bridge
	subnet  netip.Prefix
	dir     string // /tmp/atoll-hosts/<pid>-<k>: engines' files
	rule    []string
	hosts   []*Host
}

// Host is one network namespace on the Net.
type Host struct {
	Name string     // the name the test gave it
	NS   string     // the namespace's name (ip netns)
	IP   netip.Addr // its address on the bridge
	net  *Net
	veth string // the host end of its link, on the bridge
	peer string // its end inside the namespace (named eth0 there)
	cut  bool
	dir  string // files of this host (an engine's data)

	partChain bool      // ATOLL-PART exists in the namespace
	engines   []*Engine // started on this host
}

const (
	namePrefix = "ah"
	ruleTag    = "atoll-hosts"
	baseDir    = "/tmp/atoll-hosts"
	peerName   = "eth0"
)

var netSeq struct {
	mu sync.Mutex
	n  int
}

// New creates a bridge with its own /24 and a firewall rule letting the
// bridge forward between its ports, after removing leftovers of killed
// runs. The test's cleanup removes it with every host on it.
func New(t T) *Net {
	t.Helper()
	if err := Supported(); err != nil {
		refuse(t, "hosts", err)
	}
	sweep(t)
	netSeq.mu.Lock()
	k := netSeq.n
	netSeq.n++
	netSeq.mu.Unlock()
	if k >= 26 {
		t.Fatalf("hosts: more than 26 nets in one process")
	}
	n := &Net{t: t, prefix: namePrefix + strconv.Itoa(os.Getpid()) + string(rune('a'+k))}
	n.Bridge = n.prefix + "br"
	n.dir = filepath.Join(baseDir, fmt.Sprintf("%d-%d", os.Getpid(), k))
	t.Cleanup(n.teardown)
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		t.Fatalf("hosts: %v", err)
	}
	if err := n.createBridge(); err != nil {
		refuse(t, "creating the bridge", err)
	}
	chain := "FORWARD"
	if run("iptables", "-w", "-S", "DOCKER-USER") == nil {
		chain = "DOCKER-USER" // Docker's FORWARD drops bridged traffic unless this accepts it
	}
	rule := []string{chain, "-i", n.Bridge, "-o", n.Bridge, "-m", "comment", "--comment", ruleTag + " " + strconv.Itoa(os.Getpid()), "-j", "ACCEPT"}
	if err := run("iptables", append([]string{"-w", "-I"}, rule...)...); err != nil {
		refuse(t, "accepting forwarding on the bridge", err)
	}
	n.rule = rule
	return n
}

// Supported says why this machine cannot run hosts, or nil if it can.
func Supported() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (euid %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "iptables", "tc", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s: %w", tool, err)
		}
	}
	return nil
}

// refuse skips the test because the machine refuses step; under CI=true
// it fails instead, since CI is meant to run it.
func refuse(t T, step string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("hosts: %s: %v (CI=true: this must run)", step, err)
	}
	t.Skipf("skipping: hosts: %s: %v", step, err)
}

// createBridge picks a free 10.251.x.0/24, under a lock shared by every
// process using this package, and brings the bridge up on its .1.
func (n *Net) createBridge() error {
	unlock, err := lockFile(filepath.Join(baseDir, "lock"))
	if err != nil {
		return err
	}
	defer unlock()
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return fmt.Errorf("ip addr show: %w", err)
	}
	for x := 1; x < 255; x++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(x), 0}), 24)
		if strings.Contains(string(out), fmt.Sprintf(" 10.251.%d.", x)) {
			continue
		}
		n.subnet, n.Gateway = p, p.Addr().Next()
		if err := run("ip", "link", "add", n.Bridge, "type", "bridge"); err != nil {
			return err
		}
		if err := run("ip", "addr", "add", n.Gateway.String()+"/24", "dev", n.Bridge); err != nil {
			return err
		}
		return run("ip", "link", "set", n.Bridge, "up")
	}
	return fmt.Errorf("no free 10.251.x.0/24")
}

func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Add creates a host: a namespace with loopback up and eth0 on the bridge
// at the next free address, routed by default through the machine.
func (n *Net) Add(name string) *Host {
	n.t.Helper()
	i := len(n.hosts)
	ip := n.Gateway
	for range i + 9 { // hosts from .10
		ip = ip.Next()
	}
	h := &Host{Name: name, NS: n.prefix + "-" + name, IP: ip, net: n,
		veth: n.prefix + strconv.Itoa(i), peer: n.prefix + "p" + strconv.Itoa(i),
		dir: filepath.Join(n.dir, name)}
	n.hosts = append(n.hosts, h)
	steps := [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", h.peer},
		{"ip", "link", "set", h.veth, "master", n.Bridge, "up"},
		{"ip", "link", "set", h.peer, "netns", h.NS},
		{"ip", "-n", h.NS, "link", "set", h.peer, "name", peerName},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
		{"ip", "-n", h.NS, "addr", "add", ip.String() + "/24", "dev", peerName},
		{"ip", "-n", h.NS, "link", "set", peerName, "up"},
		{"ip", "-n", h.NS, "route", "add", "default", "via", n.Gateway.String()},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			refuse(n.t, "adding host "+name, err)
		}
	}
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		n.t.Fatalf("hosts: %v", err)
	}
	return h
}

// Hosts returns the hosts in the order they were added.
func (n *Net) Hosts() []*Host { return append([]*Host(nil), n.hosts...) }

// Command returns a command that runs in the host's network namespace (and
// the machine's other namespaces: nsenter, unlike ip netns exec, keeps the
// cgroup mounts a Docker engine needs).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + h.NS, "--", name}, args...)...)
}

// Exec runs a command in the host's namespace and returns its combined
// output; the error carries the output.
func (h *Host) Exec(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Dir is a directory for this host's files, removed with the Net.
func (h *Host) Dir() string { return h.dir }

// run runs a command on the machine; the error carries its output.
func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Wrap is the command prefix that runs a program in the host's network
// namespace: append the program and its arguments.
func (h *Host) Wrap() []string { return []string{"nsenter", "--net=/run/netns/" + h.NS, "--"} }
