package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
)

// shape is how much a store holds: manifests spread evenly over repos,
// tags evenly over manifests.
type shape struct{ repos, manifests, tags int }

// repoName is repository r: a hundred organisations of applications.
func repoName(r int) string { return fmt.Sprintf("org%02d/app-%06d", r%100, r) }

// tagsOf returns the tags of the i-th manifest of a store of shape s.
func (s shape) tagsOf(i int) []string {
	from, to := i*s.tags/s.manifests, (i+1)*s.tags/s.manifests
	tags := make([]string, 0, to-from)
	for t := from; t < to; t++ {
		tags = append(tags, fmt.Sprintf("1.%d.%d", i, t-from))
	}
	return tags
}

// manifestAt builds the i-th manifest: an OCI image manifest of 1-4 KiB
// (three layers and an annotation padding it out), unique to i; with
// subject set, it refers to that manifest.
func manifestAt(i int, subject digest.Digest) *storage.Manifest {
	size := 1024 + int(uint32(i)*2654435761%3072)
	var b strings.Builder
	b.Grow(size + 512)
	b.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`)
	b.WriteString(`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + fakeDigest(i, 0) + `","size":1470},"layers":[`)
	for l := 1; l <= 3; l++ {
		if l > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}`, fakeDigest(i, l), 1000*l+i%1000)
	}
	b.WriteString(`]`)
	if subject != "" {
		b.WriteString(`,"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + subject.String() + `","size":1024}`)
	}
	fmt.Fprintf(&b, `,"annotations":{"org.opencontainers.image.revision":"%d","pad":"`, i)
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString(`"}}`)
	content := []byte(b.String())
	m := &storage.Manifest{
		Descriptor: v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(content), Size: int64(len(content))},
		Subject:    subject,
		Content:    content,
	}
	if subject != "" {
		m.Descriptor.ArtifactType = "application/vnd.example.signature"
	}
	return m
}

// fakeDigest names blob l of manifest i: the manifests reference blobs
// the benchmark never stores.
func fakeDigest(i, l int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", i, l)))
	return "sha256:" + hex.EncodeToString(h[:])
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
