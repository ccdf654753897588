package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

const repo = "bench/s3"

// bench holds the processes and what the scenarios share.
type bench struct {
	cfg config
	dir string // temp dir: MinIO data, atoll data dirs, logs
	res results

	minio     *proc
	minioAddr string
	mc        *minio.Client
	atoll     *proc
	atollBase string
	hc        *http.Client

	payload  []byte // random; the first 16 bytes are restamped per blob
	recv     []byte // pull destination, same size as payload
	memBlobs [][]byte
	nonce    uint64 // per run, so no two runs produce the same blobs
	serial   uint64

	atollBlob string            // digest of the blob last pushed through atoll
	direct    map[string]string // object key -> digest of what minio-go put there
}

// Objects minio-go writes directly, overwritten every round.
const (
	keyDefault  = "direct/default"
	keyUnsigned = "direct/unsigned"
)

// init generates the random data and faults the buffers in.
func (b *bench) init() error {
	b.hc = newHTTPClient(4)
	b.direct = map[string]string{}
	size := b.cfg.sizeMiB << 20
	b.payload, b.recv = make([]byte, size), make([]byte, size)
	logf("generating %d MiB of random data", b.cfg.sizeMiB)
	if _, err := rand.Read(b.payload); err != nil {
		return err
	}
	for i := 0; i < len(b.recv); i += 4096 {
		b.recv[i] = 1 // fault the pages in now, not during the first pull
	}
	b.nonce = binary.LittleEndian.Uint64(b.payload[8:16])
	if b.cfg.has("memory") {
		logf("generating %d x %d MiB of random data", b.cfg.memUploads, b.cfg.memMiB)
		for range b.cfg.memUploads {
			blob := make([]byte, b.cfg.memMiB<<20)
			if _, err := rand.Read(blob); err != nil {
				return err
			}
			b.memBlobs = append(b.memBlobs, blob)
		}
	}
	return nil
}

// stamp restamps buf so its digest was never pushed before, and returns
// the digest (computed outside any timing).
func (b *bench) stamp(buf []byte) string {
	b.serial++
	binary.LittleEndian.PutUint64(buf[0:8], b.serial)
	binary.LittleEndian.PutUint64(buf[8:16], b.nonce)
	return sha256Digest(buf)
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// ordered reverses xs on even rounds, so no variant always goes first.
func ordered[T any](round int, xs []T) []T {
	if round%2 == 0 {
		slices.Reverse(xs)
	}
	return xs
}

// putDirect writes the payload to key with minio-go. A bytes.Reader is an
// io.ReaderAt, so minio-go sends its parts in parallel.
func (b *bench) putDirect(ctx context.Context, key string, opts minio.PutObjectOptions) error {
	info, err := b.mc.PutObject(ctx, bucket, key, bytes.NewReader(b.payload), int64(len(b.payload)), opts)
	if err != nil {
		return fmt.Errorf("minio-go PutObject %s: %w", key, err)
	}
	if info.Size != int64(len(b.payload)) {
		return fmt.Errorf("minio-go PutObject %s: stored %d bytes, want %d", key, info.Size, len(b.payload))
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
	vs := ordered(round, []variant{
		{"push-atoll", func(dgst string) error {
			b.atollBlob = dgst
			return push(ctx, b.hc, b.atollBase, repo, b.payload, dgst)
		}},
		{"push-default", direct(keyDefault, minio.PutObjectOptions{})},
		{"push-unsigned", direct(keyUnsigned, minio.PutObjectOptions{DisableContentSha256: true})},
	})
	for _, v := range vs {
		dgst := b.stamp(b.payload)
		start := time.Now()
		if err := v.put(dgst); err != nil {
			return err
		}
		b.res.record(round, v.key, mbps(int64(len(b.payload)), time.Since(start)), "MB/s", "")
	}
	return nil
}

// runPull times two reads of the blob pushed through atoll this round (the
// first fills atoll's disk cache from MinIO, the second reads the cache)
// and a minio-go GetObject of an object of the same size. Without the push
// scenario, both are written first, untimed.
func (b *bench) runPull(ctx context.Context, round int) error {
	if !b.cfg.has("push") {
		b.atollBlob = b.stamp(b.payload)
		if err := push(ctx, b.hc, b.atollBase, repo, b.payload, b.atollBlob); err != nil {
			return fmt.Errorf("pushing the blob to pull: %w", err)
		}
		b.direct[keyUnsigned] = b.stamp(b.payload)
		if err := b.putDirect(ctx, keyUnsigned, minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
			return err
		}
	}
	type step struct {
		key, dgst string
		get       func() error
	}
	atoll := func() error { return pull(ctx, b.hc, b.atollBase, repo, b.atollBlob, b.recv) }
	direct := func() error {
		obj, err := b.mc.GetObject(ctx, bucket, keyUnsigned, minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("minio-go GetObject: %w", err)
		}
		defer obj.Close()
		return readExactly(obj, b.recv, "minio-go GetObject")
	}
	groups := ordered(round, [][]step{
		{{"pull-atoll-cold", b.atollBlob, atoll}, {"pull-atoll-warm", b.atollBlob, atoll}},
		{{"pull-minio", b.direct[keyUnsigned], direct}},
	})
	for _, s := range slices.Concat(groups...) {
		start := time.Now()
		if err := s.get(); err != nil {
			return fmt.Errorf("%s: %w", s.key, err)
		}
		elapsed := time.Since(start)
		if got := sha256Digest(b.recv); got != s.dgst {
			return fmt.Errorf("%s: content digest %s, want %s", s.key, got, s.dgst)
		}
		b.res.record(round, s.key, mbps(int64(len(b.recv)), elapsed), "MB/s", "")
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
		p.stop(err != nil && ctx.Err() == nil)
		if !b.cfg.keep {
			_ = os.RemoveAll(filepath.Join(b.dir, name))
		}
	}()
	dgsts := make([]string, len(b.memBlobs))
	for i, blob := range b.memBlobs {
		dgsts[i] = b.stamp(blob)
	}
	select {
	case <-time.After(500 * time.Millisecond): // let start-up work finish
	case <-ctx.Done():
		return ctx.Err()
	}
	idle, err := p.statusKiB("VmRSS")
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
			rss, err := p.statusKiB("VmRSS")
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
	hc := newHTTPClient(len(b.memBlobs))
	defer hc.CloseIdleConnections()
	errs := make([]error, len(b.memBlobs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, blob := range b.memBlobs {
		wg.Go(func() { errs[i] = push(ctx, hc, base, repo, blob, dgsts[i]) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(done)
	sampler.Wait()
	if err := p.annotate(firstErr(errs)); err != nil {
		return fmt.Errorf("concurrent uploads: %w", err)
	}
	if sampleErr != nil {
		return sampleErr
	}
	hwm, err := p.statusKiB("VmHWM")
	if err != nil {
		return err
	}
	n := float64(len(b.memBlobs))
	detail := fmt.Sprintf("idle %.0f MiB, peak %.0f MiB, VmHWM %.0f MiB", mib(idle), mib(peak), mib(hwm))
	b.res.record(round, "mem-per-upload", mib(peak-idle)/n, "MiB", detail)
	b.res.record(round, "mem-hwm-per-upload", mib(hwm-idle)/n, "MiB", "")
	b.res.record(round, "mem-idle", mib(idle), "MiB", "")
	b.res.record(round, "mem-peak", mib(peak), "MiB", "")
	b.res.record(round, "mem-mbps", mbps(int64(len(b.memBlobs))*int64(len(b.memBlobs[0])), elapsed), "MB/s", "")
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
