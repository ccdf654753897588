package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"time"

	"github.com/atollhq/atoll/ring"
	"github.com/atollhq/atoll/test/bench/benchkit"
	"github.com/atollhq/atoll/test/hosts"
)

// The ratios scenario measures issue 16's cluster targets where each
// member has a host, a disk queue and a link of its own, the link being
// the limit (on loopback the cluster's second copy competes with the
// first for the one disk and the two cores, so the ratios there say
// nothing about a real cluster). For each link cap, on one bridge:
//
//   - a single node on a host of its own;
//   - 3 members, R=2, routing proxy, each on a host of its own;
//   - a bare TCP sink (linkbound.go) on the single node's host;
//
// every link capped at the same rate both ways, one client outside. For
// each blob size, streamed from a file, in alternating rounds: a push
// (POST, one PUT ?digest= with the body) to the single node, through an
// owner and through the non-owner; POST ?digest= with the body through
// the non-owner; the same bytes to the sink (the link's bound). Then a
// blob placed on its owners is pulled through an owner, through the
// non-owner (it proxies) and from the sink, in one order and the reverse.
// Last, the final PUT of a chunked upload (POST, one PATCH, PUT) on the
// single node and through an owner and the non-owner, in seconds.
//
// Between timed steps the earlier copies settle on their owners
// (rebalancing moves a session's copies there) and the page cache is
// written back, untimed, so no step pays for the one before.

const repoRatios = "bench/ratios"

// ratioHosts is one cap's setup.
type ratioHosts struct {
	mbit    int
	single  *member
	members []*member
	sink    string // the link bound's sink, host:port
	hc      *http.Client
}

// startRatioHosts starts the single node, the cluster and the sink, each
// host's link capped at mbit, and waits until all answer.
func startRatioHosts(t *runT, cfg config, mbit int) *ratioHosts {
	net := hosts.New(t)
	dir, err := os.MkdirTemp("", "atoll-bench-ratios-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := net.Add("single")
	h.Limit(mbit)
	r := &ratioHosts{mbit: mbit, hc: benchkit.NewHTTPClient(8, 4)}
	r.single = startMember(t, h, dir, cfg.atollBin, nil)
	r.members = addMembers(t, net, dir, cfg.atollBin, "s", 3, mbit, 2, "proxy")
	waitFormed(t, r.members)

	self, err := os.Executable()
	if err != nil {
		t.Fatalf("%v", err)
	}
	r.sink = h.IP.String() + ":5001"
	sink := h.Command(context.Background(), self, "-link-sink", r.sink)
	sink.Stderr = os.Stderr
	if err := sink.Start(); err != nil {
		t.Fatalf("start the link sink: %v", err)
	}
	t.Cleanup(func() { _ = sink.Process.Kill(); _ = sink.Wait() })
	ctx := context.Background()
	err = benchkit.Poll(ctx, time.Minute, nil, func(ctx context.Context) error {
		if _, err := linkTransfer(r.sink, 1, true); err != nil {
			return err
		}
		resp, err := benchkit.Get(ctx, r.hc, r.single.base()+"/v2/", nil)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	if err != nil {
		t.Fatalf("the single node or the link sink did not start: %v", err)
	}
	return r
}

// owners are the members the ring places dgst on (the members' default
// ring config), and one member that is not an owner.
func (r *ratioHosts) owners(dgst string) (owners []*member, other *member) {
	names := make([]string, len(r.members))
	for i, m := range r.members {
		names[i] = m.name
	}
	on := ring.New(ring.Config{}, names).Owners(digestOf(dgst), 2)
	for _, m := range r.members {
		if slices.Contains(on, m.name) {
			owners = append(owners, m)
		} else {
			other = m
		}
	}
	return owners, other
}

// holders are the members whose data dir holds blob dgst.
func (r *ratioHosts) holders(dgst string) []string {
	var out []string
	hex := dgst[len("sha256:"):]
	for _, m := range r.members {
		if _, err := os.Stat(m.data + "/blobs/sha256/" + hex[:2] + "/" + hex); err == nil {
			out = append(out, m.name)
		}
	}
	return out
}

// settle waits, untimed, until blob dgst is on its owners and nowhere
// else, then writes the page cache back.
func (r *ratioHosts) settle(ctx context.Context, dgst string) error {
	owners, _ := r.owners(dgst)
	want := names(owners)
	err := benchkit.Poll(ctx, 5*time.Minute, nil, func(context.Context) error {
		if got := r.holders(dgst); !slices.Equal(got, want) {
			return fmt.Errorf("blob %s on %v, owners %v", dgst, got, want)
		}
		return nil
	})
	syncDisks()
	return err
}

func names(ms []*member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}

// syncDisks writes back every dirty page (untimed), so a timed step does
// not pay for the writeback of the one before.
func syncDisks() { _ = exec.Command("sync").Run() }

// series holds each row's values, keyed by cap, size and row.
type series map[string][]float64

func (s series) record(mbit, mib int, key string, v float64, unit, detail string) {
	k := seriesKey(mbit, mib, key)
	s[k] = append(s[k], v)
	benchkit.Logf("%d Mbit/s, %d MiB: %-22s %9.2f %s  (%s)", mbit, mib, key, v, unit, detail)
}

func seriesKey(mbit, mib int, key string) string {
	return strconv.Itoa(mbit) + "/" + strconv.Itoa(mib) + "/" + key
}

func (s series) median(mbit, mib int, key string) float64 {
	return benchkit.Median(s[seriesKey(mbit, mib, key)])
}

// spread is a row's "min..max".
func (s series) spread(mbit, mib int, key string) string {
	vs := s[seriesKey(mbit, mib, key)]
	if len(vs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f..%.1f", slices.Min(vs), slices.Max(vs))
}

// ratios runs the scenario for every cap and size and prints its tables.
func ratios(cfg config) {
	res := series{}
	load0 := benchkit.Loadavg()
	for _, mbit := range cfg.ratioMbit {
		t := &runT{}
		r := startRatioHosts(t, cfg, mbit)
		if err := r.measure(context.Background(), cfg, res); err != nil {
			t.Fatalf("ratios at %d Mbit/s: %v", mbit, err)
		}
		t.done()
	}
	printRatios(cfg, res, load0)
}

// measure runs the rounds of one cap.
func (r *ratioHosts) measure(ctx context.Context, cfg config, res series) error {
	for _, mib := range cfg.ratioMiB {
		blob, err := benchkit.NewBlobFile("", mib)
		if err != nil {
			return err
		}
		err = r.sizeRounds(ctx, cfg, res, blob, mib)
		_ = blob.Close()
		if err != nil {
			return fmt.Errorf("%d MiB: %w", mib, err)
		}
	}
	if cfg.finalizeMiB <= 0 {
		return nil
	}
	blob, err := benchkit.NewBlobFile("", cfg.finalizeMiB)
	if err != nil {
		return err
	}
	defer blob.Close()
	for round := 1; round <= cfg.ratioRounds; round++ {
		if err := r.finalizeRound(ctx, res, blob, round); err != nil {
			return fmt.Errorf("finalize round %d: %w", round, err)
		}
	}
	return nil
}

// sizeRounds runs the push rounds, then the pull rounds, of one size.
func (r *ratioHosts) sizeRounds(ctx context.Context, cfg config, res series, blob *benchkit.BlobFile, mib int) error {
	for round := 1; round <= cfg.ratioRounds; round++ {
		if err := r.pushRound(ctx, res, blob, mib, round); err != nil {
			return fmt.Errorf("push round %d: %w", round, err)
		}
	}
	return r.pullRounds(ctx, cfg, res, blob, mib)
}

// printRatios prints one table per cap and size, and the finalize rows.
func printRatios(cfg config, res series, load0 string) {
	fmt.Printf("\nissue 16's ratios on hosts of their own: every link capped both ways; single node vs 3 members\n")
	fmt.Printf("R=2 routing proxy; one client outside; blobs streamed from a file; %d alternating rounds\n", cfg.ratioRounds)
	fmt.Printf("(pulls: 2 samples a round); MB = 10^6 bytes; load average (1m 5m 15m) at start %s, at end %s\n",
		load0, benchkit.Loadavg())
	type line struct{ key, title, base, target string }
	lines := []line{
		{"link-push", "link bound: bare TCP to a host, one capped link", "", ""},
		{"push-single", "push, single node", "link-push", "of the link"},
		{"push-owner", "push via an owner, R=2", "push-single", "of single"},
		{"push-nonowner", "push via the non-owner, R=2", "push-single", "of single (target >= 0.80)"},
		{"post-digest-nonowner", "POST ?digest= via the non-owner, R=2", "push-single", "of single"},
		{"link-pull", "link bound: bare TCP from a host", "", ""},
		{"pull-owner", "pull via an owner", "link-pull", "of the link"},
		{"pull-nonowner", "pull via the non-owner (proxy)", "pull-owner", "of owner (target >= 0.90)"},
	}
	for _, mbit := range cfg.ratioMbit {
		for _, mib := range cfg.ratioMiB {
			fmt.Printf("\n%d Mbit/s links, %d MiB blob\n", mbit, mib)
			t := benchkit.NewTable(os.Stdout, "row", "n", "median MB/s", "min..max", "ratio")
			for _, l := range lines {
				m := res.median(mbit, mib, l.key)
				ratio := "-"
				if l.base != "" {
					if q := m / res.median(mbit, mib, l.base); !math.IsNaN(q) {
						ratio = fmt.Sprintf("%.2fx %s", q, l.target)
					}
				}
				t.Row(l.title, strconv.Itoa(len(res[seriesKey(mbit, mib, l.key)])), fmt.Sprintf("%.1f", m),
					res.spread(mbit, mib, l.key), ratio)
			}
			t.Flush()
		}
		if cfg.finalizeMiB > 0 {
			fmt.Printf("\n%d Mbit/s links, final PUT of a %d MiB chunked upload (POST, one PATCH, PUT), seconds\n", mbit, cfg.finalizeMiB)
			t := benchkit.NewTable(os.Stdout, "row", "n", "median s", "min..max", "target")
			for _, k := range []string{"finalize-single", "finalize-owner", "finalize-nonowner"} {
				vs := res[seriesKey(mbit, cfg.finalizeMiB, k)]
				spread := "-"
				if len(vs) > 0 {
					spread = fmt.Sprintf("%.3f..%.3f", slices.Min(vs), slices.Max(vs))
				}
				t.Row(k, strconv.Itoa(len(vs)), fmt.Sprintf("%.3f", benchkit.Median(vs)), spread, "<= 1 s")
			}
			t.Flush()
		}
	}
}
