package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/test/bench/benchkit"
)

// shape is how much the loaded members hold: manifests spread evenly over
// repos, tags evenly over manifests.
type shape struct{ repos, manifests, tags int }

// repoOf is the repository of manifest i.
func (s shape) repoOf(i int) int { return int(int64(i) * int64(s.repos) / int64(s.manifests)) }

// tagsOf returns the tags of manifest i.
func (s shape) tagsOf(i int) []string { return benchkit.Tags(i, s.manifests, s.tags) }

// built is what building the loaded members took.
type built struct {
	load   time.Duration // 0: reused
	dbSize int64
}

// dbPath is member name's metadata.db under dir.
func dbPath(dir, name string) string { return filepath.Join(dir, name, "data", "metadata.db") }

// build writes n1's database through metadb.PutManifests (origin n1,
// unsynced: it is closed and synced before use) and copies it to n2, whose
// member opens it under its own name. A database a previous run built for
// the same shape is reused.
func build(ctx context.Context, c config, dir string) (built, error) {
	stamp := filepath.Join(dir, fmt.Sprintf("built-%d-%d-%d", c.repos, c.manifests, c.tags))
	var b built
	if _, err := os.Stat(stamp); err != nil {
		start := time.Now()
		if err := load(ctx, c, dbPath(dir, "n1")); err != nil {
			return b, err
		}
		b.load = time.Since(start)
		if err := copyFile(dbPath(dir, "n1"), dbPath(dir, "n2")); err != nil {
			return b, err
		}
		if err := os.WriteFile(stamp, nil, 0o644); err != nil {
			return b, err
		}
	}
	fi, err := os.Stat(dbPath(dir, "n1"))
	if err != nil {
		return b, err
	}
	b.dbSize = fi.Size()
	return b, nil
}

func load(ctx context.Context, c config, path string) error {
	if err := os.RemoveAll(filepath.Dir(filepath.Dir(path))); err != nil {
		return err
	}
	meta, err := metadb.Open(path, metadb.Options{Origin: "n1", NoSync: true})
	if err != nil {
		return err
	}
	benchkit.Logf("building n1: %d manifests in %d repositories, %d tags, %d a write", c.manifests, c.repos, c.tags, c.batch)
	start, last := time.Now(), time.Now()
	puts := make([]metadb.ManifestPut, 0, c.batch)
	var prev digest.Digest
	for i := range c.manifests {
		var subject digest.Digest
		if i%10 == 9 && c.repoOf(i-1) == c.repoOf(i) {
			subject = prev
		}
		m := benchkit.ManifestAt(i, subject)
		prev = m.Descriptor.Digest
		puts = append(puts, metadb.ManifestPut{Repo: benchkit.RepoName(c.repoOf(i)), Manifest: m, Tags: c.tagsOf(i)})
		if len(puts) == c.batch || i == c.manifests-1 {
			if err := meta.PutManifests(ctx, puts); err != nil {
				_ = meta.Close()
				return fmt.Errorf("building n1: %w", err)
			}
			puts = puts[:0]
		}
		if time.Since(last) > 15*time.Second {
			last = time.Now()
			benchkit.Logf("built %d of %d manifests (%.0f/s)", i+1, c.manifests, float64(i+1)/time.Since(start).Seconds())
		}
	}
	// Every member applied the log, so a cluster at rest has trimmed it:
	// a member joining takes a snapshot. Reopening compacts the file.
	n, err := meta.Trim(ctx, meta.Vector())
	if err = errors.Join(err, meta.Close()); err != nil {
		return fmt.Errorf("trimming n1's log: %w", err)
	}
	benchkit.Logf("built in %v; trimmed %d batches from the log", time.Since(start).Round(time.Second), n)
	if meta, err = metadb.Open(path, metadb.Options{Origin: "n1"}); err != nil {
		return err
	}
	if err := meta.Close(); err != nil {
		return err
	}
	return syncFile(path)
}

// syncFile makes the file at path durable.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// copyFile copies src to dst (cp, which makes sparse and reflinked copies
// where it can), synced.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "--reflink=auto", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp %s %s: %w: %s", src, dst, err, out)
	}
	return syncFile(dst)
}
