package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// replicationReport is GET /_atoll/v1/replication.
type replicationReport struct {
	Member string `json:"member"`
	Rules  []struct {
		Name      string `json:"name"`
		Direction string `json:"direction"`
		Queued    int    `json:"queued"`
		Manifests int64  `json:"manifests"`
		LastPass  string `json:"lastPass"`
		LastError string `json:"lastError"`
		Failures  int64  `json:"failures"`
	} `json:"rules"`
	Upstreams []struct {
		Prefix   string           `json:"prefix"`
		Hits     map[string]int64 `json:"hits"`
		Misses   map[string]int64 `json:"misses"`
		Requests int64            `json:"requests"`
	} `json:"upstreams"`
}

// TestReplicationStatusUIHeadless: a node with a push rule to a live
// atoll, another to an address nobody answers, and a pull-through
// upstream. GET /_atoll/v1/replication reports each rule's queue, copies,
// passes and errors and the cache's hits (blobs served from the cache
// count), misses and upstream requests; the Replication page in headless
// Chromium shows them.
func TestReplicationStatusUIHeadless(t *testing.T) {
	browser := uiChromium(t)
	remote := startNodeWith(t, t.TempDir(), nodeOptions{})
	hub, hubAddr := newFakeHub(t)
	img := ptImage(t, 2, 8<<10)
	hub.put(t, "library/alpine", "latest", img)
	conf := ptWriteConfig(t, fmt.Sprintf(`replication:
  - name: to-remote
    remote: {url: "%s"}
    direction: push
    repositories: ["team/**"]
    interval: 1s
  - name: to-nowhere
    remote: {url: "http://%s"}
    direction: push
    repositories: ["team/**"]
    interval: 1s
upstreams:
  - prefix: hub/
    remoteurl: http://%s
    library: true
`, remote.URL(), freeAddr(t), hubAddr))
	n := startNodeWith(t, t.TempDir(), nodeOptions{args: []string{"--config", conf}})
	c := newClient(n.URL())
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ptPush(t, n.Addr(), "team/app:v1", img)
	for range 2 { // a miss per blob, then hits
		if err := ptPull(ctx, n.Addr(), "hub/alpine:latest", img); err != nil {
			t.Fatal(err)
		}
	}

	var last replicationReport
	pollUntil(t, 20*time.Second, "the replication status", func() error {
		if err := c.getJSON(ctx, "/_atoll/v1/replication", &last); err != nil {
			return err
		}
		if len(last.Rules) != 2 || len(last.Upstreams) != 1 {
			return fmt.Errorf("%d rules and %d upstreams, want 2 and 1: %+v", len(last.Rules), len(last.Upstreams), last)
		}
		live, dead, up := last.Rules[0], last.Rules[1], last.Upstreams[0]
		switch {
		case live.Name != "to-remote" || live.Direction != "push" || live.Queued != 0 || live.Manifests < 1 || live.LastPass == "" || live.LastError != "":
			return fmt.Errorf("to-remote: %+v, want nothing queued, a manifest sent, a pass and no error", live)
		case dead.Name != "to-nowhere" || dead.Queued < 1 || dead.LastError == "" || dead.Failures < 1:
			return fmt.Errorf("to-nowhere: %+v, want the push queued and an error", dead)
		case up.Prefix != "hub/" || up.Misses["blob"] < 3 || up.Hits["blob"] < 3 || up.Hits["manifest"] < 1 || up.Requests < 1:
			return fmt.Errorf("upstream: %+v, want 3 blob misses, then 3 blob hits and a manifest hit", up)
		}
		return nil
	})
	t.Logf("status: %+v", last)

	uiCheckPage(t, browser, n.URL()+"/ui/#/replication", filepath.Join(t.TempDir(), "replication.png"), []string{
		`data-view="replication"`, `data-state="ready"`,
		`data-rule="to-remote" data-state="ok"`, `data-rule="to-nowhere" data-state="failing"`,
		`data-upstream="hub/"`, remote.URL(), "connection refused",
	})
}
