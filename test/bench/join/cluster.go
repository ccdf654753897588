package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
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
	debug  string // http://127.0.0.1:PORT of /debug/pprof
	gossip string
	dir    string
	proc   *benchkit.Proc
}

// cluster is the members started so far; each new one joins all of them.
type cluster struct {
	dir     string
	members []*member
}

// start launches member name with its data under dir/name, joined to the
// members started before it.
func (c *cluster) start(ctx context.Context, name, bin string) (*member, error) {
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
	debug, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	m.base, m.debug = "http://"+addr, "http://"+debug
	args := []string{"serve", "--addr", addr, "--data", filepath.Join(m.dir, "data"), "--debug-addr", debug,
		"--node-name", name, "--gossip-addr", m.gossip, "--grpc-addr", grpc}
	var join []string
	for _, o := range c.members {
		join = append(join, o.gossip)
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if m.proc, err = benchkit.Start(name, filepath.Join(m.dir, "log"), bin, args, []string{"ATOLL_CLUSTER_FAST=true"}); err != nil {
		return nil, err
	}
	c.members = append(c.members, m)
	return m, nil
}

// startReady starts member name and waits until it is ready, starting it
// again on other ports when one it was given was taken meanwhile.
func (c *cluster) startReady(ctx context.Context, name, bin string, timeout time.Duration, started func(*member)) (*member, error) {
	for try := 1; ; try++ {
		m, err := c.start(ctx, name, bin)
		if err != nil {
			return nil, err
		}
		if started != nil {
			started(m)
		}
		err = m.proc.WaitHTTP(ctx, timeout, m.base+"/readyz")
		if err == nil {
			return m, nil
		}
		c.members = slices.DeleteFunc(c.members, func(x *member) bool { return x == m })
		if try < 3 && strings.Contains(m.proc.LogTail(4096), "address already in use") {
			m.proc.Stop(false)
			benchkit.Logf("%s: a port was taken meanwhile; starting it again", name)
			continue
		}
		m.proc.Stop(true)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
}

// remove stops m and forgets it; its log stays.
func (c *cluster) remove(m *member) error {
	m.proc.Stop(false)
	c.members = slices.DeleteFunc(c.members, func(x *member) bool { return x == m })
	return os.RemoveAll(filepath.Join(m.dir, "data"))
}

func (c *cluster) stop() {
	for _, m := range c.members {
		m.proc.Stop(false)
	}
}

// profile saves a CPU profile of m taken over the next d to path.
func (m *member) profile(ctx context.Context, d time.Duration, path string) error {
	u := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", m.debug, int(d.Seconds()))
	var resp *http.Response
	err := benchkit.Poll(ctx, 5*time.Second, m.proc, func(ctx context.Context) error {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(m.debug, "http://"), time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err
	})
	if err == nil {
		resp, err = benchkit.Get(ctx, http.DefaultClient, u, nil)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
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
		u := fmt.Sprintf("%s/v2/%s/manifests/%s", m.base, benchkit.RepoName(s.repoOf(i)), tags[0])
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
	if rss := procStatus(m.proc.Pid(), "RssAnon:"); rss != "" {
		out += "; anonymous RSS " + rss
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

// printReport prints the join times: each round, and the median and
// min-max of each joiner binary's rounds.
func printReport(c config, b built, joins []time.Duration) {
	fmt.Printf("join of a fresh member, 3-member cluster, %d manifests (%d repositories, %d tags)\n", c.manifests, c.repos, c.tags)
	if b.load > 0 {
		fmt.Printf("  loaded member's metadata.db: %d MiB, built in %v\n", b.dbSize>>20, b.load.Round(time.Second))
	} else {
		fmt.Printf("  loaded member's metadata.db: %d MiB (reused)\n", b.dbSize>>20)
	}
	for i, d := range joins {
		fmt.Printf("  round %d (%s): ready %.1f s after start\n", i+1, c.joinerBin(i), d.Seconds())
	}
	for b, bin := range c.joinerBins {
		var ds []time.Duration
		for i := b; i < len(joins); i += len(c.joinerBins) {
			ds = append(ds, joins[i])
		}
		slices.Sort(ds)
		fmt.Printf("  %s: median %.1f s, min %.1f s, max %.1f s of %d (target <= 60 s)\n", bin, ds[len(ds)/2].Seconds(), ds[0].Seconds(), ds[len(ds)-1].Seconds(), len(ds))
	}
}
