package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

const repo = "bench/s3"

// bench holds the processes and what the scenarios share.
type bench struct {
	cfg config
	dir string // temp dir: MinIO data, atoll data dirs, logs
	res results

	minio     *benchkit.Proc
	minioAddr string
	mc        *minio.Client
	atoll     *benchkit.Proc
	atollBase string
	hc        *http.Client

	*benchkit.Payload
	memBlobs [][]byte

	atollBlob string            // digest of the blob last pushed through atoll
	direct    map[string]string // object key -> digest of what minio-go put there
}

// Objects minio-go writes directly, overwritten every round.
const (
	keyDefault  = "direct/default"
	keyUnsigned = "direct/unsigned"
)

// init generates the random data and faults the buffers in.
func (b *bench) init() (err error) {
	b.hc = benchkit.NewHTTPClient(16, 4)
	b.direct = map[string]string{}
	if b.Payload, err = benchkit.NewPayload(b.cfg.sizeMiB); err != nil {
		return err
	}
	if b.cfg.has("memory") {
		benchkit.Logf("generating %d x %d MiB of random data", b.cfg.memUploads, b.cfg.memMiB)
		for range b.cfg.memUploads {
			blob, err := benchkit.RandomBytes(b.cfg.memMiB << 20)
			if err != nil {
				return err
			}
			b.memBlobs = append(b.memBlobs, blob)
		}
	}
	return nil
}

// putDirect writes the payload to key with minio-go. A bytes.Reader is an
// io.ReaderAt, so minio-go sends its parts in parallel.
func (b *bench) putDirect(ctx context.Context, key string, opts minio.PutObjectOptions) error {
	info, err := b.mc.PutObject(ctx, bucket, key, bytes.NewReader(b.Data), int64(len(b.Data)), opts)
	if err != nil {
		return fmt.Errorf("minio-go PutObject %s: %w", key, err)
	}
	if info.Size != int64(len(b.Data)) {
		return fmt.Errorf("minio-go PutObject %s: stored %d bytes, want %d", key, info.Size, len(b.Data))
	}
	return nil
}

// runPush times a fresh blob through atoll and the same amount of bytes
// through minio-go PutObject, default and unsigned.
func (b *bench) runPush(ctx context.Context, round int) error {
	type variant struct {
		key string
		put func(dgst string) error
	}
	direct := func(key string, opts minio.PutObjectOptions) func(string) error {
		return func(dgst string) error { b.direct[key] = dgst; return b.putDirect(ctx, key, opts) }
	}
	vs := benchkit.Ordered(round, []variant{
		{"push-atoll", func(dgst string) error {
			b.atollBlob = dgst
			return benchkit.PushMonolithic(ctx, b.hc, b.atollBase, repo, b.Data, dgst)
		}},
		{"push-default", direct(keyDefault, minio.PutObjectOptions{})},
		{"push-unsigned", direct(keyUnsigned, minio.PutObjectOptions{DisableContentSha256: true})},
	})
	for _, v := range vs {
		dgst := b.Stamp(b.Data)
		start := time.Now()
		if err := v.put(dgst); err != nil {
			return err
		}
		b.res.record(round, v.key, benchkit.MBps(int64(len(b.Data)), time.Since(start)), "MB/s", "")
	}
	return nil
}

// runPull times two reads of the blob pushed through atoll this round (the
// first fills atoll's disk cache from MinIO, the second reads the cache)
// and a minio-go GetObject of an object of the same size. Without the push
// scenario, both are written first, untimed.
func (b *bench) runPull(ctx context.Context, round int) error {
	if !b.cfg.has("push") {
		b.atollBlob = b.Stamp(b.Data)
		if err := benchkit.PushMonolithic(ctx, b.hc, b.atollBase, repo, b.Data, b.atollBlob); err != nil {
			return fmt.Errorf("pushing the blob to pull: %w", err)
		}
		b.direct[keyUnsigned] = b.Stamp(b.Data)
		if err := b.putDirect(ctx, keyUnsigned, minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
			return err
		}
	}
	type step struct {
		key, dgst string
		get       func() error
	}
	atoll := func() error {
		_, err := benchkit.Pull(ctx, b.hc, b.atollBase, repo, b.atollBlob, b.Recv)
		return err
	}
	direct := func() error {
		obj, err := b.mc.GetObject(ctx, bucket, keyUnsigned, minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("minio-go GetObject: %w", err)
		}
		defer obj.Close()
		return benchkit.ReadExactly(obj, b.Recv, "minio-go GetObject")
	}
	groups := benchkit.Ordered(round, [][]step{
		{{"pull-atoll-cold", b.atollBlob, atoll}, {"pull-atoll-warm", b.atollBlob, atoll}},
		{{"pull-minio", b.direct[keyUnsigned], direct}},
	})
	for _, s := range slices.Concat(groups...) {
		start := time.Now()
		if err := s.get(); err != nil {
			return fmt.Errorf("%s: %w", s.key, err)
		}
		elapsed := time.Since(start)
		if got := benchkit.Digest(b.Recv); got != s.dgst {
			return fmt.Errorf("%s: content digest %s, want %s", s.key, got, s.dgst)
		}
		b.res.record(round, s.key, benchkit.MBps(int64(len(b.Recv)), elapsed), "MB/s", "")
	}
	return nil
}

// runMemory starts a fresh atoll, lets it settle, reads its idle VmRSS, then
// runs the concurrent uploads while sampling VmRSS every cfg.sample.
func (b *bench) runMemory(ctx context.Context, round int) (err error) {
	name := fmt.Sprintf("atoll-mem-%d", round)
	p, base, err := b.startAtoll(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		p.Stop(err != nil && ctx.Err() == nil)
		if !b.cfg.keep {
			_ = os.RemoveAll(filepath.Join(b.dir, name))
		}
	}()
	dgsts := make([]string, len(b.memBlobs))
	for i, blob := range b.memBlobs {
		dgsts[i] = b.Stamp(blob)
	}
	select {
	case <-time.After(500 * time.Millisecond): // let start-up work finish
	case <-ctx.Done():
		return ctx.Err()
	}
	idle, err := statusKiB(p, "VmRSS")
	if err != nil {
		return err
	}

	done := make(chan struct{})
	peak, sampleErr := idle, error(nil)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(b.cfg.sample)
		defer tick.Stop()
		for {
			rss, err := statusKiB(p, "VmRSS")
			if err != nil {
				sampleErr = err
				return
			}
			peak = max(peak, rss)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	hc := benchkit.NewHTTPClient(4*len(b.memBlobs), len(b.memBlobs))
	defer hc.CloseIdleConnections()
	errs := make([]error, len(b.memBlobs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, blob := range b.memBlobs {
		wg.Go(func() { errs[i] = benchkit.PushMonolithic(ctx, hc, base, repo, blob, dgsts[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(done)
	sampler.Wait()
	if err := p.Annotate(firstErr(errs)); err != nil {
		return fmt.Errorf("concurrent uploads: %w", err)
	}
	if sampleErr != nil {
		return sampleErr
	}
	hwm, err := statusKiB(p, "VmHWM")
	if err != nil {
		return err
	}
	n := float64(len(b.memBlobs))
	detail := fmt.Sprintf("idle %.0f MiB, peak %.0f MiB, VmHWM %.0f MiB", mib(idle), mib(peak), mib(hwm))
	b.res.record(round, "mem-per-upload", mib(peak-idle)/n, "MiB", detail)
	b.res.record(round, "mem-hwm-per-upload", mib(hwm-idle)/n, "MiB", "")
	b.res.record(round, "mem-idle", mib(idle), "MiB", "")
	b.res.record(round, "mem-peak", mib(peak), "MiB", "")
	b.res.record(round, "mem-mbps", benchkit.MBps(int64(len(b.memBlobs))*int64(len(b.memBlobs[0])), elapsed), "MB/s", "")
	return nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func firstErr(errs []error) error {
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("upload %d: %w", i, err)
		}
	}
	return nil
}
