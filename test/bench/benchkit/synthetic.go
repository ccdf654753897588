package benchkit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
)

// A synthetic registry for the metadata benchmarks (bench-metadata, the
// join bench): repositories named like a hundred organisations'
// applications, manifests of 1-4 KiB unique to their index, tags spread
// evenly over the manifests.

// RepoName is repository r.
func RepoName(r int) string { return fmt.Sprintf("org%02d/app-%06d", r%100, r) }

// Tags returns the tags of manifest i of a store holding tags tags over
// manifests manifests.
func Tags(i, manifests, tags int) []string {
	from, to := int64(i)*int64(tags)/int64(manifests), int64(i+1)*int64(tags)/int64(manifests)
	out := make([]string, 0, to-from)
	for t := from; t < to; t++ {
		out = append(out, fmt.Sprintf("1.%d.%d", i, t-from))
	}
	return out
}

// ManifestAt builds manifest i: an OCI image manifest of 1-4 KiB (three
// layers and an annotation padding it out), unique to i; with subject set,
// it refers to that manifest.
func ManifestAt(i int, subject digest.Digest) *storage.Manifest {
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
// the benchmarks never store.
func fakeDigest(i, l int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, l))
	return "sha256:" + hex.EncodeToString(h[:])
}
