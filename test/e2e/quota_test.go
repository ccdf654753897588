package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Quotas: the distinct bytes of the blobs and manifests linked to the
// matching repositories, each counted once, cluster-wide.

const quotaConfig = `
quotas:
  - name: team
    repositories: ["team/**"]
    limit: 10KiB
`

// usageReport is GET /_atoll/v1/usage.
type usageReport struct {
	Quotas []struct {
		Name       string `json:"name"`
		LimitBytes int64  `json:"limitBytes"`
		Bytes      int64  `json:"bytes"`
		Blobs      int    `json:"blobs"`
		Manifests  int    `json:"manifests"`
	} `json:"quotas"`
	Repositories []struct {
		Name  string `json:"name"`
		Bytes int64  `json:"bytes"`
		Blobs int    `json:"blobs"`
	} `json:"repositories"`
}

// quotaUsed returns the bytes and blobs the quota named team counts on c.
func quotaUsed(ctx context.Context, c *client) (bytes int64, blobs int, err error) {
	var u usageReport
	if err := c.getJSON(ctx, "/_atoll/v1/usage", &u); err != nil {
		return 0, 0, err
	}
	for _, q := range u.Quotas {
		if q.Name == "team" {
			return q.Bytes, q.Blobs, nil
		}
	}
	return 0, 0, fmt.Errorf("no quota team in %+v", u)
}

// waitUsage polls until every client reports the quota at bytes.
func waitUsage(t *testing.T, ctx context.Context, what string, bytes int64, cs ...*client) {
	t.Helper()
	pollUntil(t, 20*time.Second, what, func() error {
		for _, c := range cs {
			got, _, err := quotaUsed(ctx, c)
			if err != nil {
				return err
			}
			if got != bytes {
				return fmt.Errorf("%s: quota team at %d bytes, want %d", c.base, got, bytes)
			}
		}
		return nil
	})
}

// fill returns n bytes that differ by seed.
func fill(n int, seed string) []byte {
	return []byte(strings.Repeat(seed, n/len(seed)+1)[:n])
}

// runQuota drives one registry (one node, or the members behind cs):
// writes through cs[0] and cs[len-1], usage checked on all.
func runQuota(t *testing.T, cs []*client, gcBase string) {
	ctx := context.Background()
	first, last := cs[0], cs[len(cs)-1]
	big := fill(6000, "big")
	cfg := []byte(`{"quota":"test"}`)
	if err := pushImageBlobs(ctx, first, "team/a", big, cfg); err != nil {
		t.Fatal(err)
	}
	used := int64(len(big) + len(cfg))
	waitUsage(t, ctx, "usage after the first pushes", used, cs...)

	// A mount counts nothing new: the blob is counted once.
	if _, err := last.do(ctx, "POST", "/v2/team/b/blobs/uploads/?mount="+digest.FromBytes(big).String()+"&from=team/a", nil, nil, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	// A repository outside the quota is not counted.
	if err := last.pushMonolithic(ctx, "other", fill(20000, "other")); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, ctx, "usage after a mount", used, cs...)

	// Past the limit: refused, by monolithic and by chunked upload, and
	// nothing is stored.
	over := fill(5000, "over")
	r, err := last.do(ctx, "POST", "/v2/team/b/blobs/uploads/?digest="+digest.FromBytes(over).String(), octetStream, over, http.StatusForbidden)
	if err != nil {
		t.Fatalf("a push past the quota: %v", err)
	}
	for _, want := range []string{"DENIED", `quota \"team\"`, "10.0 KiB"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("refusal %s does not say %s", r.body, want)
		}
	}
	loc, err := first.startUpload(ctx, "team/c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.do(ctx, "PUT", withDigest(loc, digest.FromBytes(over)), octetStream, over, http.StatusForbidden); err != nil {
		t.Fatalf("a chunked push past the quota: %v", err)
	}
	for _, c := range cs {
		for _, repo := range []string{"team/b", "team/c"} {
			if _, err := c.do(ctx, "HEAD", "/v2/"+repo+"/blobs/"+digest.FromBytes(over).String(), nil, nil, http.StatusNotFound); err != nil {
				t.Errorf("refused blob: %v", err)
			}
		}
	}
	// A manifest past the limit is refused too: a filler leaves less room
	// than the manifest needs. Deleting the filler's link gives it back.
	m := stressManifest(cfg, [][]byte{big})
	filler := fill(10240-int(used)-len(m)+1, "filler")
	if err := first.pushMonolithic(ctx, "team/a", filler); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, ctx, "usage with the filler", used+int64(len(filler)), cs...)
	if r, err := last.do(ctx, "PUT", "/v2/team/a/manifests/v1", manifestHeader, m, http.StatusForbidden); err != nil || !strings.Contains(string(r.body), "DENIED") {
		t.Fatalf("a manifest past the quota: %v", err)
	}
	if _, err := first.do(ctx, "DELETE", "/v2/team/a/blobs/"+digest.FromBytes(filler).String(), nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, ctx, "usage after the filler's delete", used, cs...)
	if _, err := last.do(ctx, "PUT", "/v2/team/a/manifests/v1", manifestHeader, m, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	used += int64(len(m))
	waitUsage(t, ctx, "usage after a manifest", used, cs...)

	// Deletes give the room back: the blob link of team/b, then the
	// manifest; GC the blobs nothing references.
	if _, err := last.do(ctx, "DELETE", "/v2/team/b/blobs/"+digest.FromBytes(big).String(), nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
	if _, err := last.do(ctx, "DELETE", "/v2/team/a/manifests/"+digest.FromBytes(m).String(), nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, ctx, "usage after the deletes", used-int64(len(m)), cs...)
	pollUntil(t, 30*time.Second, "gc frees the quota", func() error {
		if _, _, err := collectGarbage(ctx, gcBase, "0s"); err != nil {
			return err
		}
		for _, c := range cs {
			if got, _, err := quotaUsed(ctx, c); err != nil || got != 0 {
				return fmt.Errorf("%s: %d bytes (%v) after gc", c.base, got, err)
			}
		}
		return nil
	})
	if err := last.pushMonolithic(ctx, "team/b", over); err != nil {
		t.Fatalf("the push refused before, after gc: %v", err)
	}
	waitUsage(t, ctx, "usage after the push gc made room for", int64(len(over)), cs...)
}

func TestQuotaOneNode(t *testing.T) {
	debug := freeAddr(t)
	n := startNodeWith(t, t.TempDir(), nodeOptions{
		args: []string{"--config", ptWriteConfig(t, quotaConfig), "--debug-addr", debug},
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE=1s"},
	})
	c := newClient(n.URL())
	defer c.close()
	runQuota(t, []*client{c}, n.URL())
	used, limit, err := quotaMetrics(c, "http://"+debug+"/metrics")
	if err != nil || used != 5000 || limit != 10240 {
		t.Fatalf("metrics: used %v limit %v (%v), want 5000 and 10240", used, limit, err)
	}
}

func TestQuotaCluster(t *testing.T) {
	cl := startLoopbackCluster(t, 3, clusterOptions{
		args: []string{"--config", ptWriteConfig(t, quotaConfig)},
		env:  []string{"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE=1s"},
	})
	var cs []*client
	for _, m := range cl.members {
		c := newClient(m.URL())
		defer c.close()
		cs = append(cs, c)
	}
	runQuota(t, cs, cl.members[1].URL())
}

// quotaMetrics reads the quota team's gauges from a /metrics page.
func quotaMetrics(c *client, url string) (used, limit float64, err error) {
	r, err := c.do(context.Background(), "GET", url, nil, nil, http.StatusOK)
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		line := sc.Text()
		if _, err := fmt.Sscanf(strings.Replace(line, `atoll_quota_used_bytes{quota="team"}`, "used", 1), "used %g", &used); err == nil {
			continue
		}
		_, _ = fmt.Sscanf(strings.Replace(line, `atoll_quota_limit_bytes{quota="team"}`, "limit", 1), "limit %g", &limit)
	}
	return used, limit, nil
}
