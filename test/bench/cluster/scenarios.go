package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

const (
	repoPull    = "bench/pull"
	repoPush    = "bench/push"
	repoPullers = "bench/pullers"
)

// bench holds what the scenarios share.
type bench struct {
	cfg config
	hc  *http.Client
	*benchkit.Payload
	blob *benchkit.BlobFile // finalize: streamed from disk
	res  results

	single, r1proxy, r1redirect, r2 *cluster
	relays                          *relays // pull: started by the first round (pull.go)

	blobs    [][]byte // pullers: the blobs and their digests
	digests  []string
	pullBufs [][]byte // pullers: one destination per puller
}

func newBench(cfg config) (*bench, error) {
	p, err := benchkit.NewPayload(cfg.sizeMiB)
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, hc: benchkit.NewHTTPClient(32, 8), Payload: p, res: results{}}
	if slices.Contains(benchkit.SplitList(cfg.scenarios), "finalize") {
		if b.blob, err = benchkit.NewBlobFile(cfg.workdir, cfg.finalizeMiB); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *bench) close() {
	if b.relays != nil {
		b.relays.stop()
	}
	if b.blob != nil {
		_ = b.blob.Close()
	}
}

// setupPullers pushes the pullers' blobs to the single node and to the R=2
// cluster (round-robin over its members).
func (b *bench) setupPullers(ctx context.Context) error {
	size := b.cfg.blobMiB << 20
	benchkit.Logf("pullers: pushing %d blobs of %d MiB", b.cfg.blobs, b.cfg.blobMiB)
	for i := range b.cfg.blobs {
		blob, err := benchkit.RandomBytes(size)
		if err != nil {
			return err
		}
		dgst := benchkit.Digest(blob)
		b.blobs, b.digests = append(b.blobs, blob), append(b.digests, dgst)
		for _, c := range []*cluster{b.single, b.r2} {
			m := c.members[i%len(c.members)]
			if err := benchkit.PushMonolithic(ctx, b.hc, m.base, repoPullers, blob, dgst); err != nil {
				return fmt.Errorf("%s: pullers blob %d via %s: %w", c.label, i, m.name, err)
			}
		}
	}
	for range b.cfg.pullers {
		b.pullBufs = append(b.pullBufs, benchkit.FaultIn(make([]byte, size)))
	}
	return nil
}

func (b *bench) runPullers(ctx context.Context, round int) error {
	for _, c := range benchkit.Ordered(round, []*cluster{b.single, b.r2}) {
		v, n, err := b.pullers(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.label, err)
		}
		key := map[bool]string{true: "pullers-single", false: "pullers-cluster"}[c == b.single]
		b.res.record(round, key, v, "MB/s", fmt.Sprintf("%s, %d pulls", c.label, n))
	}
	return nil
}

// pullers runs cfg.pullers goroutines that pull blob k%blobs through member
// k%members for the k-th request overall, starting no request after
// cfg.duration. Each body is compared inline with the pushed bytes (a
// memcmp, far cheaper than hashing). It returns the aggregate MB/s over
// the time until the last pull ended, and the number of pulls.
func (b *bench) pullers(ctx context.Context, c *cluster) (float64, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hc := benchkit.NewHTTPClient(4*b.cfg.pullers, b.cfg.pullers)
	defer hc.CloseIdleConnections()
	var next, done, total atomic.Int64
	var firstErr error
	var once sync.Once
	fail := func(err error) { once.Do(func() { firstErr = err; cancel() }) }
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(b.cfg.duration)
	for _, buf := range b.pullBufs {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				k := next.Add(1) - 1
				i := int(k % int64(len(b.blobs)))
				m := c.members[int(k%int64(len(c.members)))]
				if _, err := benchkit.Pull(ctx, hc, m.base, repoPullers, b.digests[i], buf); err != nil {
					fail(fmt.Errorf("pull %d via %s: %w", i, m.name, err))
					return
				}
				if !bytes.Equal(buf, b.blobs[i]) {
					fail(fmt.Errorf("pull %d via %s: content differs from %s", i, m.name, b.digests[i]))
					return
				}
				done.Add(1)
				total.Add(int64(len(buf)))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, 0, firstErr
	}
	return benchkit.MBps(total.Load(), elapsed), done.Load(), nil
}

func names(ms []*member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}
