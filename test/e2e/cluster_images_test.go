package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"
)

// Images pushed and pulled the way a registry client does, with
// go-containerregistry's remote package.

// clusterImage is a random image and where the test pushes it.
type clusterImage struct {
	repo, tag string
	img       v1.Image
	digest    v1.Hash
	blobs     []digest.Digest // its layers and config
}

// newClusterImage makes a random image of the given number of layers of
// layerSize random bytes each (plus a tar header).
func newClusterImage(t *testing.T, repo, tag string, layers int, layerSize int64) clusterImage {
	t.Helper()
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatalf("random image: %v", err)
	}
	ti := clusterImage{repo: repo, tag: tag, img: img}
	if ti.digest, err = img.Digest(); err != nil {
		t.Fatalf("image digest: %v", err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("image manifest: %v", err)
	}
	ti.blobs = append(ti.blobs, digest.Digest(m.Config.Digest.String()))
	for _, l := range m.Layers {
		ti.blobs = append(ti.blobs, digest.Digest(l.Digest.String()))
	}
	return ti
}

// newClusterImages makes n images in repos prefix/0..prefix/<n-1>, tag v1,
// with 2, 3, 4, 2, ... layers.
func newClusterImages(t *testing.T, prefix string, n int, layerSize int64) []clusterImage {
	t.Helper()
	out := make([]clusterImage, n)
	for i := range out {
		out[i] = newClusterImage(t, fmt.Sprintf("%s/%d", prefix, i), "v1", 2+i%3, layerSize)
	}
	return out
}

// imageBlobs returns the distinct layer and config digests of images.
func imageBlobs(images []clusterImage) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, ti := range images {
		for _, d := range ti.blobs {
			out[d] = true
		}
	}
	return out
}

// ggcrClient pushes and pulls through one endpoint (a member or a
// rrBalancer), recording what the registry acknowledges in a ledger. It never
// retries, so a failed request fails the push or pull.
type ggcrClient struct {
	host string // host:port
	opts []remote.Option
}

// newGGCRClient returns a client of host. Without keep-alives every
// request opens a new connection, which behind a balancer may reach
// another member.
func newGGCRClient(host string, l *ackLedger, keepAlives bool) *ggcrClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = !keepAlives
	return &ggcrClient{host: host, opts: []remote.Option{
		remote.WithTransport(l.wrap(tr)),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}}
}

func (ic *ggcrClient) ref(repo, tagOrDigest string) name.Reference {
	sep := ":"
	if strings.Contains(tagOrDigest, ":") {
		sep = "@"
	}
	ref, err := name.ParseReference(ic.host+"/"+repo+sep+tagOrDigest, name.Insecure)
	if err != nil {
		panic(fmt.Sprintf("test bug: reference %s/%s%s%s: %v", ic.host, repo, sep, tagOrDigest, err))
	}
	return ref
}

func (ic *ggcrClient) with(ctx context.Context) []remote.Option {
	return append([]remote.Option{remote.WithContext(ctx)}, ic.opts...)
}

// push writes the image by tag.
func (ic *ggcrClient) push(ctx context.Context, ti clusterImage) error {
	if err := remote.Write(ic.ref(ti.repo, ti.tag), ti.img, ic.with(ctx)...); err != nil {
		return fmt.Errorf("push %s:%s to %s: %w", ti.repo, ti.tag, ic.host, err)
	}
	return nil
}

// pushByDigest writes the image without a tag.
func (ic *ggcrClient) pushByDigest(ctx context.Context, ti clusterImage) error {
	if err := remote.Write(ic.ref(ti.repo, ti.digest.String()), ti.img, ic.with(ctx)...); err != nil {
		return fmt.Errorf("push %s@%s to %s: %w", ti.repo, ti.digest, ic.host, err)
	}
	return nil
}

// tag points tag at the image's manifest, which must be there.
func (ic *ggcrClient) tag(ctx context.Context, ti clusterImage, tag string) error {
	ref := ic.ref(ti.repo, tag).(name.Tag)
	if err := remote.Tag(ref, ti.img, ic.with(ctx)...); err != nil {
		return fmt.Errorf("tag %s:%s on %s: %w", ti.repo, tag, ic.host, err)
	}
	return nil
}

// pull fetches the image by ref (tag or digest), checks that it is the
// image the test pushed and validates it: every layer and the config are
// read in full and their digests and diff ids checked.
func (ic *ggcrClient) pull(ctx context.Context, ti clusterImage, ref string) error {
	img, err := remote.Image(ic.ref(ti.repo, ref), ic.with(ctx)...)
	if err != nil {
		return fmt.Errorf("pull %s:%s from %s: %w", ti.repo, ref, ic.host, err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("pull %s:%s from %s: %w", ti.repo, ref, ic.host, err)
	}
	if d != ti.digest {
		return fmt.Errorf("pull %s:%s from %s: got %s, pushed %s", ti.repo, ref, ic.host, d, ti.digest)
	}
	if err := validate.Image(img); err != nil {
		return fmt.Errorf("pull %s:%s from %s: invalid: %w", ti.repo, ref, ic.host, err)
	}
	return nil
}

// pushAllImages pushes images in order and fails the test on the first error.
func pushAllImages(t *testing.T, ic *ggcrClient, images []clusterImage) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	for _, ti := range images {
		if err := ic.push(ctx, ti); err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

// pullAndValidate pulls and validates every image by tag through every client.
func pullAndValidate(t *testing.T, images []clusterImage, ics ...*ggcrClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ic := range ics {
		for _, ti := range images {
			if err := ic.pull(ctx, ti, ti.tag); err != nil {
				t.Error(err)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// memberGGCRClients returns an image client of each member.
func memberGGCRClients(ms []*clusterMember, l *ackLedger) []*ggcrClient {
	out := make([]*ggcrClient, len(ms))
	for i, m := range ms {
		out[i] = newGGCRClient(m.Addr(), l, true)
	}
	return out
}

// registryContents is what a member lists: repository → tag → manifest digest.
type registryContents map[string]map[string]string

// contentsOf lists the catalog of the member at base, the tags of each
// repository and the digest each tag resolves to there.
func contentsOf(ctx context.Context, base string) (registryContents, error) {
	c := newClient(base)
	defer c.close()
	var catalog struct {
		Repositories []string `json:"repositories"`
	}
	if err := c.getJSON(ctx, "/v2/_catalog?n=10000", &catalog); err != nil {
		return nil, err
	}
	out := registryContents{}
	for _, repo := range catalog.Repositories {
		var tags struct {
			Tags []string `json:"tags"`
		}
		if err := c.getJSON(ctx, "/v2/"+repo+"/tags/list?n=10000", &tags); err != nil {
			return nil, err
		}
		out[repo] = map[string]string{}
		for _, tag := range tags.Tags {
			r, err := c.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+url.PathEscape(tag), manifestAccept, nil, http.StatusOK)
			if err != nil {
				return nil, err
			}
			out[repo][tag] = r.header.Get("Docker-Content-Digest")
		}
	}
	return out, nil
}

// contentsOfImages is what a registry holding images lists.
func contentsOfImages(images []clusterImage) registryContents {
	out := registryContents{}
	for _, ti := range images {
		if out[ti.repo] == nil {
			out[ti.repo] = map[string]string{}
		}
		out[ti.repo][ti.tag] = ti.digest.String()
	}
	return out
}

// sameContents reports the first member of ms whose contents differ from
// want, or, when want is nil, from the first member's.
func sameContents(ms []*clusterMember, want registryContents) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range ms {
		got, err := contentsOf(ctx, m.URL())
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if want == nil {
			want = got
			continue
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s lists %s, want %s", m.name, describeContents(got), describeContents(want))
		}
	}
	return nil
}

// describeContents prints contents compactly: repo:tag@digest-prefix.
func describeContents(c registryContents) string {
	var items []string
	for repo, tags := range c {
		if len(tags) == 0 {
			items = append(items, repo)
		}
		for tag, d := range tags {
			_, hex, _ := strings.Cut(d, ":")
			items = append(items, fmt.Sprintf("%s:%s@%.12s", repo, tag, hex))
		}
	}
	sort.Strings(items)
	return "[" + strings.Join(items, " ") + "]"
}
