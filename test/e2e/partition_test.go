package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Partitions the way Jepsen tests them: four members, each on a host of
// its own, clients on the machine (which reaches every host whatever the
// partition) pushing images and moving tags through every member while the
// links between two groups are cut, then healed. After the heal:
//
//   - every blob and manifest acknowledged (201) on either side pulls, with
//     its digest, through every member, and every acknowledged blob is back
//     to R copies;
//   - every tag resolves to the same digest on every member, and that
//     digest was written to it, and no acknowledged write to the tag was
//     sent after that write was acknowledged (all members share this
//     machine's clock, so a later acknowledged write has the newer stamp
//     and must win);
//   - every member is ready and sees every other alive.
//
// The time from the heal until all of that holds is printed.

const (
	partitionRepo  = "part/shared"
	partitionTag   = "latest" // written through every member: the contested tag
	partitionFor   = 12 * time.Second
	convergeWithin = 2 * time.Minute
)

func TestPartition(t *testing.T) {
	for _, split := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d|%d", split, 4-split), func(t *testing.T) {
			net, hs := newHosts(t, 4)
			c := startHostCluster(t, hs, clusterOptions{replicas: 2})
			w := startWriters(t, c.members)
			w.waitAcks(t, 2) // every writer got through before the cut
			before := w.acked()

			net.Partition(hs[:split], hs[split:])
			cut := time.Now()
			waitSeesDead(t, c.members[0], c.members[split].name)
			waitSeesDead(t, c.members[split], c.members[0].name)
			pollUntil(t, partitionFor+time.Minute, "writes on both sides of the cut", func() error {
				if time.Since(cut) < partitionFor {
					return fmt.Errorf("partitioned for %v", time.Since(cut).Round(time.Second))
				}
				return nil
			})
			during := w.acked()
			w.stop()
			net.HealPartition()

			for i, m := range c.members {
				if n := during[m.name] - before[m.name]; n == 0 && (i >= split || split > 1) {
					t.Errorf("%s, on a side of %d members, acknowledged no tag write during the partition", m.name, max(split, 4-split))
				}
			}
			took := checkConverged(t, c, w.ledger, w.acks)
			logMeasure(t, "partition %d|%d for %v: tag writes acknowledged during it %v; converged %v after the heal",
				split, 4-split, partitionFor, subtractCounts(during, before), took.Round(time.Millisecond))
			reportSummary(fmt.Sprintf("partition %d|%d of 4 members on their own hosts: converged %v after the heal",
				split, 4-split, took.Round(time.Millisecond)))
		})
	}
}

// TestPartitionFlap flaps one member's link (down 2s, up 3s) while clients
// write through every member, then checks as TestPartition does.
func TestPartitionFlap(t *testing.T) {
	_, hs := newHosts(t, 4)
	c := startHostCluster(t, hs, clusterOptions{replicas: 2})
	w := startWriters(t, c.members)
	w.waitAcks(t, 2)
	flapper := hs[3]
	start := time.Now()
	for range 4 {
		flapper.Cut()
		hold(t, 2*time.Second)
		flapper.Heal()
		hold(t, 3*time.Second)
	}
	w.stop()
	healed := time.Since(start)
	took := checkConverged(t, c, w.ledger, w.acks)
	logMeasure(t, "%s's link flapped 4 times in %v: tag writes acknowledged %v; converged %v after the last heal",
		flapper.Name, healed.Round(time.Second), w.acked(), took.Round(time.Millisecond))
	reportSummary(fmt.Sprintf("flapping link (4 x down 2s/up 3s) on 1 of 4 members: converged %v after the last heal", took.Round(time.Millisecond)))
}

// hold waits d: the fault stays in place that long. (It is the schedule of
// the fault, not a wait for the system.)
func hold(t *testing.T, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	pollUntil(t, d+time.Second, "the fault's schedule", func() error {
		if time.Now().Before(end) {
			return fmt.Errorf("holding")
		}
		return nil
	})
}

// waitSeesDead waits until m's gossip gives up on other.
func waitSeesDead(t *testing.T, m *clusterMember, other string) {
	t.Helper()
	pollUntil(t, 30*time.Second, m.name+" sees "+other+" gone", func() error {
		s, err := m.status()
		if err != nil {
			return err
		}
		if st := s.state(other); st == "alive" {
			return fmt.Errorf("%s sees %s %s", m.name, other, st)
		}
		return nil
	})
}

// checkConverged polls until the cluster has converged (see the package
// comment above), then reads every acknowledged push through every member,
// and returns how long convergence took.
func checkConverged(t *testing.T, c *testCluster, led *ledger, acks *ackLedger) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), convergeWithin+time.Minute)
	defer cancel()
	v := led.view()
	var winners []string
	took := pollUntil(t, convergeWithin, "the cluster converges after the heal", func() error {
		if err := allReady(c.members); err != nil {
			return err
		}
		for _, m := range c.members {
			s, err := m.status()
			if err != nil {
				return err
			}
			for _, o := range c.members {
				if st := s.state(o.name); st != "alive" {
					return fmt.Errorf("%s sees %s %q", m.name, o.name, st)
				}
			}
		}
		winners = winners[:0]
		for k, puts := range v.tags {
			got, err := resolveTagEverywhere(ctx, c.members, k.repo, k.tag)
			if err != nil {
				return err
			}
			why, err := checkTagWinner(puts, got)
			if err != nil {
				return fmt.Errorf("%s:%s: %w", k.repo, k.tag, err)
			}
			winners = append(winners, k.tag+" "+why)
		}
		return replicated(c.members, acks.blobDigests(), c.opts.replicas)
	})
	t.Logf("tags after the heal: %s", strings.Join(winners, "; "))
	acks.verify(t, memberBases(c.members))
	return took
}

// checkTagWinner checks that got is the digest of a write to the tag and
// that no acknowledged write was sent after that write was acknowledged.
// A write never acknowledged (cut off mid-way) may win too: its stamp is
// unknown.
func checkTagWinner(puts []tagPut, got string) (string, error) {
	var win *tagPut
	for i := range puts {
		if puts[i].d.String() == got {
			win = &puts[i]
		}
	}
	if win == nil {
		return "", fmt.Errorf("resolves to %s, which none of its %d writes put there", got, len(puts))
	}
	if win.acked.IsZero() {
		return "won by an unacknowledged write", nil
	}
	for _, x := range puts {
		if !x.acked.IsZero() && x.sent.After(win.acked) {
			return "", fmt.Errorf("resolves to %s (acknowledged %s) over %s, acknowledged and sent %v later",
				got, win.acked.Format("15:04:05.000"), x.d, x.sent.Sub(win.acked).Round(time.Millisecond))
		}
	}
	return "won by the newest acknowledged write", nil
}

// writers push a stream of small images through every member, each
// tagged twice: partitionTag (contested by every writer) and w-<member>
// (written by one writer only). Every push and tag is recorded: blob and
// manifest 201s in acks, tag writes with their send and 201 times in
// ledger.
type writers struct {
	ledger *ledger
	acks   *ackLedger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	count  map[string]int // acknowledged tag writes by member
	n      int            // writers started
}

func startWriters(t *testing.T, ms []*clusterMember) *writers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{ledger: newLedger(), acks: newAckLedger(), cancel: cancel, count: map[string]int{}}
	t.Cleanup(w.stop)
	for _, m := range ms {
		images := make([]clusterImage, 200) // made here: newClusterImage may fail the test
		for i := range images {
			images[i] = newClusterImage(t, partitionRepo, partitionTag, 1, 1<<10)
		}
		ic := newGGCRClient(m.Addr(), w.acks, true)
		w.n++
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.write(ctx, m.name, ic, images)
		}()
	}
	return w
}

// write pushes images through ic, at most about six a second, until ctx
// ends. Failures are expected while links are cut; only 201s count.
func (w *writers) write(ctx context.Context, member string, ic *ggcrClient, images []clusterImage) {
	tick := time.NewTicker(150 * time.Millisecond) // the write rate, not a synchronisation
	defer tick.Stop()
	for _, img := range images {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		op, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := ic.pushByDigest(op, img); err == nil {
			d := digest.Digest(img.digest.String())
			for _, tag := range []string{partitionTag, "w-" + member} {
				p := w.ledger.tryManifest(img.repo, tag, d)
				if ic.tag(op, img, tag) == nil {
					w.ledger.ackManifest(img.repo, d, p)
					w.mu.Lock()
					w.count[member]++
					w.mu.Unlock()
				}
			}
		}
		cancel()
	}
}

// acked returns the acknowledged tag writes so far, by member.
func (w *writers) acked() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.count {
		out[k] = v
	}
	return out
}

// waitAcks waits until every writer has n acknowledged tag writes.
func (w *writers) waitAcks(t *testing.T, n int) {
	t.Helper()
	pollUntil(t, 30*time.Second, "every writer's first writes acknowledged", func() error {
		got := w.acked()
		if len(got) < w.n {
			return fmt.Errorf("%d of %d writers acknowledged", len(got), w.n)
		}
		for m, k := range got {
			if k < n {
				return fmt.Errorf("%s: %d", m, k)
			}
		}
		return nil
	})
}

// stop ends the writers and waits for them.
func (w *writers) stop() {
	w.cancel()
	w.wg.Wait()
}

func subtractCounts(a, b map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}
