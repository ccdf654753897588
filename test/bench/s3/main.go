// Command s3 benchmarks atoll on S3 storage against minio-go talking to the
// same MinIO directly, on this machine.
//
// It starts MinIO and atoll (REGISTRY_STORAGE=s3, bucket "bench") on free
// loopback ports in one temporary directory, then runs rounds of:
//
//   - push: a blob through atoll (POST + streamed PUT ?digest=) vs minio-go
//     PutObject of the same bytes, default and without the payload SHA-256;
//   - pull: that blob through atoll twice (the first read fills atoll's disk
//     cache from MinIO, the second is served from it) vs minio-go GetObject;
//   - memory: concurrent uploads into a freshly started atoll, sampling its
//     VmRSS to give the memory each upload costs.
//
// Variants alternate order from round to round; medians and ratios are
// printed. Numbers are reported, never asserted: the run fails only when a
// process does not start or a request or a digest check fails.
//
// Usually invoked through test/bench/s3/run.sh (make bench-s3):
//
//	go run ./test/bench/s3 -atoll-bin bin/atoll -minio-bin ~/go/bin/minio -rounds 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

const (
	bucket    = "bench"
	region    = "us-east-1"
	accessKey = "atoll-bench"
	secretKey = "atoll-bench-secret"
)

type config struct {
	atollBin, minioBin string
	workdir, scenarios string
	rounds, sizeMiB    int
	memUploads, memMiB int
	sample             time.Duration
	startTimeout       time.Duration
	keep               bool
}

var scenarioNames = []string{"push", "pull", "memory"}

func parseFlags() config {
	var c config
	flag.StringVar(&c.atollBin, "atoll-bin", "bin/atoll", "path to the atoll binary")
	flag.StringVar(&c.minioBin, "minio-bin", "minio", "path to the MinIO server binary")
	flag.StringVar(&c.workdir, "workdir", "", "parent of the temp dir (default: system temp dir)")
	flag.StringVar(&c.scenarios, "scenarios", strings.Join(scenarioNames, ","), "comma-separated scenarios to run")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds (medians are reported)")
	flag.IntVar(&c.sizeMiB, "size-mib", 256, "blob size for push and pull, MiB")
	flag.IntVar(&c.memUploads, "mem-uploads", 8, "concurrent uploads for the memory scenario")
	flag.IntVar(&c.memMiB, "mem-mib", 64, "size of each memory-scenario upload, MiB")
	flag.DurationVar(&c.sample, "sample", 50*time.Millisecond, "VmRSS sampling interval")
	flag.DurationVar(&c.startTimeout, "start-timeout", 60*time.Second, "how long to wait for MinIO or atoll to answer")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp dir (MinIO data, atoll data, logs)")
	flag.Parse()
	return c
}

func (c config) validate() error {
	switch {
	case c.rounds < 1:
		return errors.New("-rounds must be >= 1")
	case c.sizeMiB < 1 || c.memMiB < 1 || c.memUploads < 1:
		return errors.New("-size-mib, -mem-mib and -mem-uploads must be >= 1")
	case c.sample <= 0:
		return errors.New("-sample must be > 0")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil && c.has("memory") {
		return errors.New("the memory scenario reads /proc (Linux only); pass -scenarios push,pull")
	}
	return benchkit.CheckScenarios(benchkit.SplitList(c.scenarios), scenarioNames)
}

func (c config) has(s string) bool { return slices.Contains(benchkit.SplitList(c.scenarios), s) }

func main() {
	cfg := parseFlags()
	benchkit.Main("bench-s3", func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(cfg.workdir, "atoll-bench-s3-")
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, dir: dir, res: results{}}
	defer func() {
		failed := err != nil && ctx.Err() == nil // log tails, unless interrupted
		if b.atoll != nil {
			b.atoll.Stop(failed)
		}
		if b.minio != nil {
			b.minio.Stop(failed)
		}
		benchkit.RemoveTemp(dir, cfg.keep)
	}()

	if err := b.startMinio(ctx); err != nil {
		return err
	}
	if b.atoll, b.atollBase, err = b.startAtoll(ctx, "atoll"); err != nil {
		return err
	}
	benchkit.Logf("atoll: ready at %s", b.atollBase)
	if err := b.init(); err != nil {
		return err
	}
	load0 := benchkit.Loadavg()
	runners := map[string]func(context.Context, int) error{
		"push": b.runPush, "pull": b.runPull, "memory": b.runMemory,
	}
	// Canonical order, whatever the order of -scenarios.
	names := slices.DeleteFunc(slices.Clone(scenarioNames), func(s string) bool { return !cfg.has(s) })
	if err := benchkit.Rounds(ctx, cfg.rounds, names, runners); err != nil {
		return b.minio.Annotate(b.atoll.Annotate(err))
	}
	printReport(os.Stdout, cfg, b.res, load0)
	return nil
}

// startMinio starts MinIO on a data dir under b.dir, waits until it is
// live and ready, and creates the bucket.
func (b *bench) startMinio(ctx context.Context) error {
	addrs, err := benchkit.FreeAddrs(2)
	if err != nil {
		return err
	}
	data := filepath.Join(b.dir, "minio")
	args := []string{"server", data, "--address", addrs[0], "--console-address", addrs[1], "--quiet"}
	env := []string{"MINIO_ROOT_USER=" + accessKey, "MINIO_ROOT_PASSWORD=" + secretKey, "MINIO_UPDATE=off", "MINIO_BROWSER=off"}
	if b.minio, err = startProc("minio", filepath.Join(b.dir, "minio.log"), b.cfg.minioBin, args, env); err != nil {
		return err
	}
	b.minioAddr = addrs[0]
	base := "http://" + addrs[0]
	if err := b.minio.WaitHTTP(ctx, b.cfg.startTimeout, base+"/minio/health/live", base+"/minio/health/cluster"); err != nil {
		return fmt.Errorf("minio: %w", err)
	}
	b.mc, err = minio.New(addrs[0], &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Region: region})
	if err != nil {
		return err
	}
	err = b.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region})
	if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		return fmt.Errorf("minio: make bucket: %w", err)
	}
	benchkit.Logf("minio: ready at %s (data %s)", b.minioAddr, data)
	return nil
}

// startAtoll starts atoll on MinIO with registry:2 variables, with its own
// data dir (metadata, disk cache) under b.dir, and waits for /healthz.
func (b *bench) startAtoll(ctx context.Context, name string) (*benchkit.Proc, string, error) {
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	data := filepath.Join(b.dir, name)
	env := []string{
		"REGISTRY_STORAGE=s3",
		"REGISTRY_STORAGE_S3_REGIONENDPOINT=http://" + b.minioAddr,
		"REGISTRY_STORAGE_S3_BUCKET=" + bucket,
		"REGISTRY_STORAGE_S3_REGION=" + region,
		"REGISTRY_STORAGE_S3_ACCESSKEY=" + accessKey,
		"REGISTRY_STORAGE_S3_SECRETKEY=" + secretKey,
		"REGISTRY_STORAGE_S3_SECURE=false",
	}
	args := []string{"serve", "--addr", addr, "--data", data}
	p, err := startProc(name, filepath.Join(b.dir, name+".log"), b.cfg.atollBin, args, env)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := p.WaitHTTP(ctx, b.cfg.startTimeout, base+"/healthz"); err != nil {
		p.Stop(true)
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return p, base, nil
}

// startProc starts bin with args and env added to the harness's own.
func startProc(name, logPath, bin string, args, env []string) (*benchkit.Proc, error) {
	p, err := benchkit.Start(name, logPath, bin, args, env)
	if err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	return p, nil
}
