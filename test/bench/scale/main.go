// Command scale measures how atoll's throughput grows with its members,
// each member on a host of its own (test/hosts: a network namespace whose
// link to the others is capped with tc tbf, both ways), clients on the
// machine outside them all. For 1, 2, 3 and 4 members it measures:
//
//   - push: -clients concurrent monolithic pushes of -blobs distinct blobs
//     of -blob-mib, spread over the members; with R=2 every byte crosses a
//     second capped link to its other owner before the 201;
//   - pull: the same clients fetch every blob -passes times in all, each
//     from a member picked at random (a non-holder proxies or redirects,
//     -routing), and the aggregate is bytes over wall time.
//
// Then, with 4 members, the same with one member's link far slower than
// the others' (-slow-mbit), and, with 3 members and every link at
// -big-mbit, one -big-mib layer pushed through a member that does not own
// it: the time from the last byte sent to the 201.
//
// It prints one row per size with the ratio to one member and to N times
// one member (1.00 is perfect linear scaling). Then (ratios.go) issue 16's
// two cluster ratios, push through a non-owner against a single node and
// pulls through a non-owner against the owner, for one client and large
// blobs, with the link's own bound measured beside them. -scenarios picks
// among scale, slow, big and ratios. It needs root; numbers are reported,
// never asserted.
//
// Usually invoked through test/bench/scale/run.sh (make bench-scale).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	atollBin string
	members  string
	mbit     int
	blobs    int
	blobMiB  int
	clients  int
	passes   int
	replicas int
	routing  string
	bigMiB   int
	bigMbit  int
	slowMbit int

	scenarios   []string
	ratioMbit   []int // the ratios scenario's link caps
	ratioMiB    []int // and blob sizes
	ratioRounds int
	finalizeMiB int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.atollBin, "atoll-bin", "bin/atoll", "the atoll binary")
	flag.StringVar(&cfg.members, "members", "1,2,3,4", "cluster sizes to measure")
	flag.IntVar(&cfg.mbit, "mbit", 400, "cap of each member's link, Mbit/s each way")
	flag.IntVar(&cfg.blobs, "blobs", 48, "distinct blobs")
	flag.IntVar(&cfg.blobMiB, "blob-mib", 4, "size of each blob, MiB")
	flag.IntVar(&cfg.clients, "clients", 12, "concurrent clients")
	flag.IntVar(&cfg.passes, "passes", 3, "times each blob is pulled, in all")
	flag.IntVar(&cfg.replicas, "replicas", 2, "R")
	flag.StringVar(&cfg.routing, "routing", "redirect", "proxy or redirect")
	flag.IntVar(&cfg.bigMiB, "big-mib", 2048, "size of the layer pushed through a non-owner, MiB (0: skip)")
	flag.IntVar(&cfg.bigMbit, "big-mbit", 1000, "cap of every link for the big push, Mbit/s")
	flag.IntVar(&cfg.slowMbit, "slow-mbit", 40, "cap of one member's link in the slow-link run, Mbit/s (0: skip)")
	scenarios := flag.String("scenarios", "scale,slow,big,ratios", "what to run: scale (1..N members), slow (one slow link), big (a big layer via a non-owner), ratios (issue 16's)")
	ratioMbit := flag.String("ratio-mbit", "1000,2500", "ratios: link caps, Mbit/s each way")
	ratioMiB := flag.String("ratio-mib", "256,1024", "ratios: blob sizes, MiB")
	flag.IntVar(&cfg.ratioRounds, "ratio-rounds", 3, "ratios: alternating rounds")
	flag.IntVar(&cfg.finalizeMiB, "finalize-mib", 1024, "ratios: size of the chunked upload whose final PUT is timed, MiB (0: skip)")
	sink := flag.String("link-sink", "", "internal: serve the link bound's transfers on this address (ratios starts it)")
	flag.Parse()
	if *sink != "" {
		if err := runSink(*sink); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var err error
	cfg.scenarios = strings.Split(*scenarios, ",")
	if cfg.ratioMbit, err = ints(*ratioMbit); err == nil {
		cfg.ratioMiB, err = ints(*ratioMiB)
	}
	if err != nil || cfg.ratioRounds < 1 {
		fmt.Fprintf(os.Stderr, "bench-scale: bad -ratio-mbit, -ratio-mib or -ratio-rounds: %v\n", err)
		os.Exit(2)
	}
	if cfg.has("scale") || cfg.has("slow") {
		scale(cfg)
	}
	if cfg.has("big") && cfg.bigMiB > 0 {
		bigPush(cfg, int64(cfg.bigMiB)<<20, cfg.bigMbit)
	}
	if cfg.has("ratios") {
		ratios(cfg)
	}
}

func (c config) has(s string) bool { return slices.Contains(c.scenarios, s) }

// ints parses a comma-separated list of positive integers.
func ints(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers", list)
		}
		out = append(out, n)
	}
	return out, nil
}

// scale measures 1..N members (the table), then the slow link.
func scale(cfg config) {
	blobs := make([][]byte, cfg.blobs)
	for i := range blobs {
		blobs[i] = make([]byte, cfg.blobMiB<<20)
		_, _ = rand.Read(blobs[i])
	}
	type row struct {
		n          int
		push, pull float64 // MB/s
	}
	var rows []row
	for _, f := range strings.Split(cfg.members, ",") {
		if !cfg.has("scale") {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench-scale: bad -members %q\n", cfg.members)
			os.Exit(2)
		}
		t := &runT{}
		ms := startCluster(t, cfg, n)
		push, err := pushAll(cfg, ms, blobs)
		if err != nil {
			t.Fatalf("push with %d members: %v", n, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = waitPlaced(ctx, ms, int64(len(blobs)*min(cfg.replicas, n)))
		cancel()
		if err != nil {
			t.Fatalf("%d members: %v", n, err)
		}
		pull, err := pullAll(cfg, ms, blobs)
		if err != nil {
			t.Fatalf("pull with %d members: %v", n, err)
		}
		t.done()
		fmt.Fprintf(os.Stderr, "%d members: push %.1f MB/s, pull %.1f MB/s\n", n, push, pull)
		rows = append(rows, row{n, push, pull})
	}

	if len(rows) > 0 {
		fmt.Printf("\natoll scale-out: each member on its own host, link capped at %d Mbit/s each way; R=%d, routing %s;\n",
			cfg.mbit, cfg.replicas, cfg.routing)
		fmt.Printf("%d clients outside, %d blobs of %d MiB; pull = every blob %d times from a member picked at random\n\n",
			cfg.clients, cfg.blobs, cfg.blobMiB, cfg.passes)
		fmt.Printf("| members | pull MB/s | pull vs 1 | pull / (N x 1) | push MB/s | push vs 1 |\n")
		fmt.Printf("|--------:|----------:|----------:|---------------:|----------:|----------:|\n")
		for _, r := range rows {
			fmt.Printf("| %7d | %9.1f | %8.2fx | %14.2f | %9.1f | %8.2fx |\n",
				r.n, r.pull, r.pull/rows[0].pull, r.pull/rows[0].pull/float64(r.n), r.push, r.push/rows[0].push)
		}
	}
	if cfg.has("slow") && cfg.slowMbit > 0 {
		slowLink(cfg, blobs, cfg.slowMbit)
	}
}

// pushAll pushes every blob (POST ?digest=, one request) through the
// members in turn, clients at a time, and returns MB/s.
func pushAll(cfg config, ms []*member, blobs [][]byte) (float64, error) {
	jobs := make([]func(*http.Client) error, len(blobs))
	for i, b := range blobs {
		m := ms[i%len(ms)]
		jobs[i] = func(c *http.Client) error {
			d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
			resp, err := c.Post(m.base()+"/v2/scale/blobs/uploads/?digest="+d, "application/octet-stream", bytes.NewReader(b))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				body, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("push to %s: %s: %s", m.name, resp.Status, body)
			}
			return nil
		}
	}
	return run(cfg.clients, jobs, int64(len(blobs))*int64(cfg.blobMiB<<20))
}

// pullAll fetches every blob passes times in all, each time from a member
// picked at random, and returns MB/s.
func pullAll(cfg config, ms []*member, blobs [][]byte) (float64, error) {
	var jobs []func(*http.Client) error
	for range cfg.passes {
		for _, b := range blobs {
			m := ms[mrand.IntN(len(ms))]
			d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
			jobs = append(jobs, func(c *http.Client) error {
				resp, err := c.Get(m.base() + "/v2/scale/blobs/" + d)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				n, err := io.Copy(io.Discard, resp.Body)
				if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(b)) {
					return fmt.Errorf("pull %s from %s: %s, %d bytes, %v", d, m.name, resp.Status, n, err)
				}
				return nil
			})
		}
	}
	mrand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	return run(cfg.clients, jobs, int64(len(jobs))*int64(cfg.blobMiB<<20))
}

// run runs jobs on clients workers, each with its own connections, and
// returns total bytes per second over the wall time, in MB/s.
func run(clients int, jobs []func(*http.Client) error, total int64) (float64, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Minute, Transport: http.DefaultTransport.(*http.Transport).Clone()}
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				if err := jobs[i](c); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total) / took.Seconds() / 1e6, nil
}
