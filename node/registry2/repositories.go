package registry2

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// repositories imports each repository's manifests, tags and layer links.
func (im *importer) repositories(ctx context.Context) error {
	repos, err := listRepositories(ctx, im.src)
	if err != nil {
		return fmt.Errorf("import: listing repositories: %w", err)
	}
	last := time.Now()
	for i, r := range repos {
		if err := im.repository(ctx, r); err != nil {
			return fmt.Errorf("import: repository %s: %w", r.name, err)
		}
		im.rep.Repositories++
		if time.Since(last) >= im.opts.ProgressEvery {
			last = time.Now()
			im.log.Info("importing registry:2 repositories", "done", i+1, "of", len(repos))
		}
	}
	im.log.Info("registry:2 repositories imported", "repositories", len(repos), "manifests", im.rep.Manifests,
		"tags", im.rep.Tags, "layers", im.rep.Layers, "deletedManifests", im.rep.Deleted)
	return nil
}

func (im *importer) repository(ctx context.Context, r *repository) error {
	repo := r.name
	if !oci.ValidName(repo) {
		im.log.Warn("import: repository name atoll does not accept: left out", "repository", repo)
		return nil
	}
	if len(r.uploads) > 0 {
		im.log.Warn("import: uploads in progress dropped (clients retry them)", "repository", repo, "uploads", len(r.uploads))
		im.rep.Uploads += len(r.uploads)
	}
	im.rep.Deleted += r.deleted()
	manifests := im.manifests(ctx, repo, r.revisions)
	// Children before the indexes that list them.
	order := slices.Collect(func(yield func(digest.Digest) bool) {
		for d := range manifests {
			if !yield(d) {
				return
			}
		}
	})
	slices.SortFunc(order, func(a, b digest.Digest) int {
		ia, ib := isIndex(manifests[a]), isIndex(manifests[b])
		switch {
		case ia == ib:
			return compareDigest(a, b)
		case ia:
			return 1
		}
		return -1
	})
	for _, d := range order {
		if err := im.put(ctx, repo, manifests[d], ""); err != nil {
			return err
		}
		im.rep.Manifests++
	}
	tags := slices.Sorted(func(yield func(string) bool) {
		for tag := range r.tags {
			if !yield(tag) {
				return
			}
		}
	})
	for _, tag := range tags {
		d, ok, err := readLink(ctx, im.src, r.tags[tag])
		if err != nil {
			return err
		}
		m := manifests[d]
		if !ok || m == nil || !oci.ValidTag(tag) {
			im.log.Info("import: tag of a deleted manifest stays deleted", "repository", repo, "tag", tag, "digest", d)
			im.rep.DeadTags++
			continue
		}
		if err := im.put(ctx, repo, m, tag); err != nil {
			return err
		}
		im.rep.Tags++
	}
	for _, d := range r.layers {
		size, err := im.deps.Blobs.Stat(ctx, d)
		if err != nil && !im.opts.DryRun {
			im.log.Warn("import: layer link to a blob registry:2 does not hold: left out", "repository", repo, "digest", d)
			continue
		}
		if !im.opts.DryRun {
			if err := im.deps.Meta.LinkBlob(ctx, repo, d, size); err != nil {
				return err
			}
		}
		im.rep.Layers++
	}
	return nil
}

// manifests reads and parses the revisions of repo, opts.Workers at a time
// (a bucket answers each read in a round trip); those that cannot be read
// or parsed are left out with a warning.
func (im *importer) manifests(ctx context.Context, repo string, revs []digest.Digest) map[digest.Digest]*storage.Manifest {
	out := make(map[digest.Digest]*storage.Manifest, len(revs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, im.opts.Workers)
	for _, d := range revs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m, err := im.manifest(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				im.log.Warn("import: manifest left out", "repository", repo, "digest", d, "err", err)
				im.rep.Unsupported++
				return
			}
			out[d] = m
		})
	}
	wg.Wait()
	return out
}

func (im *importer) put(ctx context.Context, repo string, m *storage.Manifest, tag string) error {
	if im.opts.DryRun {
		return nil
	}
	return im.deps.Meta.PutManifest(ctx, repo, m, tag)
}

// manifest reads and parses revision d from the source's blobs; its digest
// is always checked.
func (im *importer) manifest(ctx context.Context, d digest.Digest) (*storage.Manifest, error) {
	content, err := readFile(ctx, im.src, blobPath(d))
	if err != nil {
		return nil, err
	}
	if d.Validate() != nil || d.Algorithm().FromBytes(content) != d {
		return nil, fmt.Errorf("content does not match digest %s", d)
	}
	parsed, err := oci.Parse(mediaType(content), content)
	if err != nil {
		return nil, err
	}
	m := &storage.Manifest{Descriptor: parsed.Descriptor(d, int64(len(content))), Content: content}
	if parsed.Subject != nil {
		m.Subject = parsed.Subject.Digest
	}
	return m, nil
}

// mediaType is the manifest's declared media type or, when it declares
// none (OCI allows that), the OCI type its shape says.
func mediaType(content []byte) string {
	var w struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(content, &w) != nil || w.MediaType != "" {
		return w.MediaType
	}
	if w.Manifests != nil {
		return v1.MediaTypeImageIndex
	}
	return v1.MediaTypeImageManifest
}

func isIndex(m *storage.Manifest) bool {
	switch m.Descriptor.MediaType {
	case v1.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

func compareDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
