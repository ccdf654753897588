package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// registrySpec says how to launch one registry implementation.
type registrySpec struct {
	name string
	bin  string
	// args returns the command line for a registry listening on addr and
	// storing under dataDir; dir is its private temp dir (for config files).
	args func(addr, dataDir, dir string) ([]string, error)
}

func atollSpec(bin string) registrySpec {
	return registrySpec{name: nameAtoll, bin: bin, args: func(addr, dataDir, _ string) ([]string, error) {
		return []string{"serve", "--addr", addr, "--data", dataDir}, nil
	}}
}

// distributionConfig is CNCF Distribution's configuration: filesystem
// storage, deletes enabled, errors-only logging. The access log is disabled
// so that distribution does not pay for a log line per request.
const distributionConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: %q
`

func distributionSpec(bin string) registrySpec {
	return registrySpec{name: nameDistribution, bin: bin, args: func(addr, dataDir, dir string) ([]string, error) {
		path := filepath.Join(dir, "config.yml")
		cfg := fmt.Sprintf(distributionConfig, dataDir, addr)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		return []string{"serve", path}, nil
	}}
}

// registry is a running registry process.
type registry struct {
	name string
	base string // http://127.0.0.1:PORT
	dir  string // temp dir: data/, config, registry.log
	proc *benchkit.Proc
}

func startRegistry(ctx context.Context, spec registrySpec, workdir string, timeout time.Duration) (*registry, error) {
	dir, err := os.MkdirTemp(workdir, "atoll-bench-"+spec.name+"-")
	if err != nil {
		return nil, err
	}
	r := &registry{name: spec.name, dir: dir}
	if err := r.start(ctx, spec, timeout); err != nil {
		r.stop(true, false)
		return nil, fmt.Errorf("%s: start: %w", spec.name, err)
	}
	return r, nil
}

func (r *registry) start(ctx context.Context, spec registrySpec, timeout time.Duration) error {
	dataDir := filepath.Join(r.dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return err
	}
	r.base = "http://" + addr
	args, err := spec.args(addr, dataDir, r.dir)
	if err != nil {
		return err
	}
	if r.proc, err = benchkit.Start(r.name, filepath.Join(r.dir, "registry.log"), spec.bin, args, nil); err != nil {
		return err
	}
	return r.proc.WaitHTTP(ctx, timeout, r.base+"/v2/")
}

// annotate adds the process state to err when the registry has died.
func (r *registry) annotate(err error) error {
	if r.proc == nil { // the reference pseudo-registry
		return err
	}
	return r.proc.Annotate(err)
}

// stop terminates the process (SIGTERM, then SIGKILL after 10s) and removes
// the temp dir unless keep is set. With failed set, the log tail is printed.
func (r *registry) stop(failed, keep bool) {
	if r.proc != nil {
		r.proc.Stop(failed)
	}
	benchkit.RemoveTemp(r.dir, keep)
}
