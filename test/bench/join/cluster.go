package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// member is one atoll serve process.
type member struct {
	name   string
	base   string // http://127.0.0.1:PORT
	gossip string
	dir    string
	proc   *benchkit.Proc
}

// cluster is the members started so far; each new one joins all of them.
type cluster struct {
	bin, dir string
	members  []*member
}

// start launches member name with its data under dir/name, joined to the
// members started before it.
func (c *cluster) start(ctx context.Context, name string) (*member, error) {
	m := &member{name: name, dir: filepath.Join(c.dir, name)}
	if err := os.MkdirAll(filepath.Join(m.dir, "data"), 0o755); err != nil {
		return nil, err
	}
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	grpc, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	if m.gossip, err = benchkit.FreeAddrUDP(); err != nil {
		return nil, err
	}
	m.base = "http://" + addr
	args := []string{"serve", "--addr", addr, "--data", filepath.Join(m.dir, "data"),
		"--node-name", name, "--gossip-addr", m.gossip, "--grpc-addr", grpc}
	var join []string
	for _, o := range c.members {
		join = append(join, o.gossip)
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if m.proc, err = benchkit.Start(name, filepath.Join(m.dir, "log"), c.bin, args, []string{"ATOLL_CLUSTER_FAST=true"}); err != nil {
		return nil, err
	}
	c.members = append(c.members, m)
	return m, nil
}

// remove stops m and forgets it.
func (c *cluster) remove(m *member) error {
	m.proc.Stop(false)
	c.members = slices.DeleteFunc(c.members, func(x *member) bool { return x == m })
	return os.RemoveAll(m.dir)
}

func (c *cluster) stop() {
	for _, m := range c.members {
		m.proc.Stop(false)
	}
}

// waitReady polls m's /readyz every 50ms until it answers 200.
func (m *member) waitReady(ctx context.Context, timeout time.Duration) error {
	err := m.proc.WaitHTTP(ctx, timeout, m.base+"/readyz")
	if err != nil {
		m.proc.Stop(true)
	}
	return err
}

// report checks that 200 tags picked at random resolve on m, and
// describes its snapshot install, RSS and metadata.db.
func (m *member) report(ctx context.Context, s shape) (string, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	for range 200 {
		i := rand.IntN(s.manifests)
		tags := s.tagsOf(i)
		if len(tags) == 0 {
			continue
		}
		u := fmt.Sprintf("%s/v2/%s/manifests/%s", m.base, repoName(s.repoOf(i)), tags[0])
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
		if err != nil {
			return "", err
		}
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HEAD %s after ready: %s", u, resp.Status)
		}
	}
	out := "200 random tags resolve"
	if line := grepLog(m.proc.LogPath, "installed a metadata snapshot"); line != "" {
		out += "; " + line
	}
	if rss := procStatus(m.proc.Pid(), "VmRSS:"); rss != "" {
		out += "; RSS " + rss
	}
	if fi, err := os.Stat(filepath.Join(m.dir, "data", "metadata.db")); err == nil {
		out += fmt.Sprintf("; metadata.db %d MiB", fi.Size()>>20)
	}
	return out, nil
}

// grepLog returns the last line of the log at path holding s, trimmed.
func grepLog(path, s string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			last = sc.Text()
		}
	}
	if i := strings.Index(last, s); i >= 0 {
		last = last[i:]
	}
	return last
}

// procStatus returns the value of field in /proc/pid/status.
func procStatus(pid int, field string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// printReport prints the join times: each round, the median, min-max.
func printReport(c config, b built, joins []time.Duration) {
	sorted := slices.Clone(joins)
	slices.Sort(sorted)
	fmt.Printf("join of a fresh member, 3-member cluster, %d manifests (%d repositories, %d tags)\n", c.manifests, c.repos, c.tags)
	if b.load > 0 {
		fmt.Printf("  loaded member's metadata.db: %d MiB, built in %v\n", b.dbSize>>20, b.load.Round(time.Second))
	} else {
		fmt.Printf("  loaded member's metadata.db: %d MiB (reused)\n", b.dbSize>>20)
	}
	for i, d := range joins {
		fmt.Printf("  round %d: ready %.1f s after start\n", i+1, d.Seconds())
	}
	fmt.Printf("  median %.1f s, min %.1f s, max %.1f s (target <= 60 s)\n", sorted[len(sorted)/2].Seconds(), sorted[0].Seconds(), sorted[len(sorted)-1].Seconds())
}
