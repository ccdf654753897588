package hosts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the program run on the hosts: with
// HOSTS_HELPER=serve ADDR it serves ADDR (GET /n returns n zero bytes);
// with HOSTS_HELPER=get URL it exits 0 if URL answers 200 within a second.
func TestMain(m *testing.M) {
	switch os.Getenv("HOSTS_HELPER") {
	case "serve":
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
			_, _ = io.Copy(w, io.LimitReader(zeros{}, int64(n)))
		})
		fmt.Fprintln(os.Stderr, http.ListenAndServe(os.Getenv("HOSTS_ADDR"), handler))
		os.Exit(1)
	case "get":
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Get(os.Getenv("HOSTS_URL"))
		if err != nil || resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// serve starts the helper server on the host's :8080 and waits until the
// machine reaches it.
func serve(t *testing.T, h *Host) string {
	t.Helper()
	url := "http://" + h.IP.String() + ":8080"
	cmd := h.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), "HOSTS_HELPER=serve", "HOSTS_ADDR="+h.IP.String()+":8080")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, 10*time.Second, h.Name+" serving", func() bool { return get(url+"/1") == nil })
	return url
}

// get fetches url from the machine with a one-second deadline.
func get(url string) error { return fetch(url, time.Second) }

func fetch(url string, timeout time.Duration) error {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// reaches says whether host from fetches url within a second.
func reaches(from *Host, url string) bool {
	cmd := from.Command(context.Background(), os.Args[0])
	cmd.Env = append(os.Environ(), "HOSTS_HELPER=get", "HOSTS_URL="+url+"/1")
	return cmd.Run() == nil
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval inside the deadline loop
	}
}

// TestHosts checks each thing the harness promises: every host reaches
// the others and the machine reaches it; a partition separates exactly its
// groups and heals; a cut host is unreachable until healed; a capped link
// is no faster than its cap; and nothing is left behind.
func TestHosts(t *testing.T) {
	var made []string
	t.Run("net", func(t *testing.T) {
		n := New(t)
		a, b, c := n.Add("a"), n.Add("b"), n.Add("c")
		made = []string{n.Bridge, a.NS, b.NS, c.NS, a.veth, n.dir}
		ua, ub, uc := serve(t, a), serve(t, b), serve(t, c)
		for _, p := range []struct {
			from *Host
			url  string
		}{{a, ub}, {b, uc}, {c, ua}} {
			if !reaches(p.from, p.url) {
				t.Fatalf("%s does not reach %s", p.from.Name, p.url)
			}
		}

		n.Partition([]*Host{a}, []*Host{b, c})
		if reaches(a, ub) || reaches(b, ua) || reaches(c, ua) {
			t.Errorf("a partitioned from b and c still talks to them")
		}
		if !reaches(b, uc) || get(ua+"/1") != nil || get(ub+"/1") != nil {
			t.Errorf("the partition cut more than a from b and c")
		}
		n.HealPartition()
		if !reaches(a, ub) || !reaches(c, ua) {
			t.Errorf("a does not reach b and c after the heal")
		}

		b.Cut()
		if reaches(a, ub) || get(ub+"/1") == nil {
			t.Errorf("cut b still answers")
		}
		b.Heal()
		waitFor(t, 10*time.Second, "b back after its link healed", func() bool { return reaches(a, ub) && get(ub+"/1") == nil })

		const mbit, size = 40, 4 << 20
		a.Limit(mbit)
		start := time.Now()
		if err := fetch(ua+"/"+strconv.Itoa(size), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		rate := float64(size*8) / took.Seconds() / 1e6
		t.Logf("4 MiB from a host capped at %d Mbit/s: %v (%.1f Mbit/s)", mbit, took.Round(time.Millisecond), rate)
		if rate > mbit*1.25 {
			t.Errorf("a link capped at %d Mbit/s carried %.1f Mbit/s", mbit, rate)
		}
	})
	// The subtest's cleanup removed the net.
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	nss, _ := exec.Command("ip", "netns", "list").Output()
	for _, name := range made {
		if bytes.Contains(links, []byte(name)) || bytes.Contains(nss, []byte(name)) {
			t.Errorf("%s left behind", name)
		}
		if _, err := os.Stat(name); strings.HasPrefix(name, "/") && err == nil {
			t.Errorf("%s left behind", name)
		}
	}
}

// TestSweep leaves the traces of a run killed before its cleanup (a
// namespace, a veth, a directory, named after a process that has exited)
// and checks that the next New removes them.
func TestSweep(t *testing.T) {
	if err := Supported(); err != nil {
		refuse(t, "hosts", err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(dead.Process.Pid)
	ns, link, dir := namePrefix+pid+"a-x", namePrefix+pid+"a0", baseDir+"/"+pid+"-0"
	for _, s := range [][]string{{"ip", "netns", "add", ns}, {"ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"}} {
		if err := run(s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir+"/x", 0o755); err != nil {
		t.Fatal(err)
	}
	New(t)
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	nss, _ := exec.Command("ip", "netns", "list").Output()
	if bytes.Contains(links, []byte(link)) || bytes.Contains(nss, []byte(ns)) {
		t.Errorf("the sweep left %s or %s", link, ns)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("the sweep left %s", dir)
	}
}
