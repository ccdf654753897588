package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Replication between registries: push rules send what is pushed here to
// another registry, pull rules copy another registry's repositories here.
// The other registry is a second atoll or CNCF Distribution 2.8.

// rpDistributionConfig is Distribution with deletes enabled, so a replicated
// manifest delete can land.
const rpDistributionConfig = `version: 0.1
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

// rpRemotes are the registries replication is tested against.
func rpRemotes(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"atoll": func(t *testing.T) string { return startNode(t, t.TempDir()).Addr() },
		"distribution": func(t *testing.T) string {
			return rpStartDistribution(t, distributionBinary(t))
		},
	}
}

func TestReplicationPush(t *testing.T) {
	for name, start := range rpRemotes(t) {
		t.Run(name, func(t *testing.T) {
			remoteAddr := start(t)
			conf := ptWriteConfig(t, fmt.Sprintf(`replication:
  - name: out
    remote:
      url: http://%s
    direction: push
    repositories: ["team/**"]
    interval: 1s
`, remoteAddr))
			src := startNodeWith(t, t.TempDir(), nodeOptions{args: []string{"--config", conf}})
			img := ptImage(t, 2, 32<<10)
			other := ptImage(t, 1, 4<<10)
			start := time.Now()
			ptPush(t, src.Addr(), "team/app:v1", img)
			ptPush(t, src.Addr(), "team/sub/tool:v1", other)
			ptPush(t, src.Addr(), "private/app:v1", other)
			rpWaitImage(t, remoteAddr, "team/app:v1", img)
			rpWaitImage(t, remoteAddr, "team/sub/tool:v1", other)
			logMeasure(t, "push replication of 2 images to %s: %v", name, time.Since(start).Round(time.Millisecond))
			if status, _, _ := ptDo("GET", "http://"+remoteAddr+"/v2/private/app/manifests/v1", "", ""); status != http.StatusNotFound {
				t.Errorf("private/app, which no rule matches, is on the remote: %d", status)
			}

			// A manifest deleted here is deleted there.
			d, _ := img.Digest()
			status, body, err := ptDo("DELETE", src.URL()+"/v2/team/app/manifests/"+d.String(), "", "")
			if err != nil || status != http.StatusAccepted {
				t.Fatalf("delete: %d %s %v", status, body, err)
			}
			pollUntil(t, 20*time.Second, "the delete reaches the remote", func() error {
				status, _, err := ptDo("HEAD", "http://"+remoteAddr+"/v2/team/app/manifests/"+d.String(), "", "")
				if err != nil {
					return err
				}
				if status != http.StatusNotFound {
					return fmt.Errorf("remote answers %d for the deleted manifest", status)
				}
				return nil
			})
		})
	}
}

func TestReplicationPull(t *testing.T) {
	for name, start := range rpRemotes(t) {
		t.Run(name, func(t *testing.T) {
			remoteAddr := start(t)
			imgs := map[string]v1.Image{}
			for i, ref := range []string{"team/a:v1", "team/a:v2", "team/b/c:latest", "other/x:v1"} {
				imgs[ref] = ptImage(t, 1+i%2, 16<<10)
				ptPush(t, remoteAddr, ref, imgs[ref])
			}
			conf := ptWriteConfig(t, fmt.Sprintf(`replication:
  - name: in
    remote:
      url: http://%s
    direction: pull
    repositories: ["team/**"]
    interval: 1s
`, remoteAddr))
			start := time.Now()
			dst := startNodeWith(t, t.TempDir(), nodeOptions{args: []string{"--config", conf}})
			for _, ref := range []string{"team/a:v1", "team/a:v2", "team/b/c:latest"} {
				rpWaitImage(t, dst.Addr(), ref, imgs[ref])
			}
			logMeasure(t, "pull replication of 3 tags from %s: %v", name, time.Since(start).Round(time.Millisecond))
			if status, _, _ := ptDo("GET", dst.URL()+"/v2/other/x/manifests/v1", "", ""); status != http.StatusNotFound {
				t.Errorf("other/x, which no rule matches, was copied: %d", status)
			}
			// A tag moved on the remote follows on the next pass.
			moved := ptImage(t, 1, 8<<10)
			ptPush(t, remoteAddr, "team/a:v1", moved)
			rpWaitImage(t, dst.Addr(), "team/a:v1", moved)
			for _, ref := range []string{"team/a:v1", "team/a:v2", "team/b/c:latest"} {
				want := imgs[ref]
				if ref == "team/a:v1" {
					want = moved
				}
				if err := ptPull(context.Background(), dst.Addr(), ref, want); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestReplicationClusterMemberKilled runs a push rule and a pull rule on a
// 3-member cluster and kills a member in the middle: every image still
// arrives, on both sides, once, and the remote holds exactly what matches.
func TestReplicationClusterMemberKilled(t *testing.T) {
	out := startNode(t, t.TempDir()) // push target
	in := startNode(t, t.TempDir())  // pull source
	const pulled, pushedBefore, pushedAfter = 8, 6, 4
	inImgs := map[string]v1.Image{}
	for i := range pulled {
		ref := fmt.Sprintf("in/r%d:v1", i)
		inImgs[ref] = ptImage(t, 2, 64<<10)
		ptPush(t, in.Addr(), ref, inImgs[ref])
	}
	conf := ptWriteConfig(t, fmt.Sprintf(`replication:
  - name: to-out
    remote: {url: "http://%s"}
    direction: push
    repositories: ["out/**"]
    interval: 1s
  - name: from-in
    remote: {url: "http://%s"}
    direction: pull
    repositories: ["in/**"]
    interval: 1s
`, out.Addr(), in.Addr()))
	c := startLoopbackCluster(t, 3, clusterOptions{args: []string{"--config", conf}})
	start := time.Now()
	outImgs := map[string]v1.Image{}
	push := func(i int, via *clusterMember) {
		ref := fmt.Sprintf("out/r%d:v1", i)
		outImgs[ref] = ptImage(t, 2, 32<<10)
		ptPush(t, via.Addr(), ref, outImgs[ref])
	}
	for i := range pushedBefore {
		push(i, c.members[i%3])
	}
	// Kill a member once the pull is under way, before it is done.
	pollUntil(t, 30*time.Second, "the pull rule has copied a first image", func() error {
		tags, err := rpCatalog(c.members[0].Addr())
		if err != nil {
			return err
		}
		for _, r := range tags {
			if strings.HasPrefix(r, "in/") {
				return nil
			}
		}
		return fmt.Errorf("no in/ repository yet")
	})
	victim := c.members[1]
	victim.kill()
	t.Logf("killed %s %v after the start", victim.name, time.Since(start).Round(time.Millisecond))
	live := []*clusterMember{c.members[0], c.members[2]}
	for i := pushedBefore; i < pushedBefore+pushedAfter; i++ {
		push(i, live[i%2])
	}
	for ref, img := range outImgs {
		rpWaitImage(t, out.Addr(), ref, img)
	}
	for ref, img := range inImgs {
		for _, m := range live {
			rpWaitImage(t, m.Addr(), ref, img)
		}
	}
	logMeasure(t, "replication with a member killed: %d images pushed out, %d pulled in, in %v",
		len(outImgs), len(inImgs), time.Since(start).Round(time.Millisecond))

	// Nothing more than what matches, each once with its one tag.
	repos, err := rpCatalog(out.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != len(outImgs) {
		t.Errorf("the push target holds %d repositories, want %d: %v", len(repos), len(outImgs), repos)
	}
	for _, r := range repos {
		if tags := rpTags(t, out.Addr(), r); !slices.Equal(tags, []string{"v1"}) {
			t.Errorf("%s on the push target has tags %v, want [v1]", r, tags)
		}
	}
	repos, err = rpCatalog(live[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != len(outImgs)+len(inImgs) {
		t.Errorf("the cluster holds %d repositories, want %d: %v", len(repos), len(outImgs)+len(inImgs), repos)
	}
	for ref, img := range inImgs {
		if err := ptPull(context.Background(), live[1].Addr(), ref, img); err != nil {
			t.Error(err)
		}
	}
}

// rpWaitImage waits until host serves ref as img, complete.
func rpWaitImage(t *testing.T, host, ref string, img v1.Image) {
	t.Helper()
	pollUntil(t, 45*time.Second, ref+" on "+host, func() error {
		return ptPull(context.Background(), host, ref, img)
	})
}

func rpCatalog(host string) ([]string, error) {
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Catalog(context.Background(), reg, ptRemote...)
}

func rpTags(t *testing.T, host, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r, ptRemote...)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// rpStartDistribution runs Distribution with deletes enabled.
func rpStartDistribution(t *testing.T, bin string) string {
	t.Helper()
	addr := freeAddr(t)
	conf := ptWriteConfig(t, fmt.Sprintf(rpDistributionConfig, filepath.Join(t.TempDir(), "data"), addr))
	ptRunDistribution(t, bin, addr, conf)
	return addr
}
