package e2e

import (
	"context"
	"path/filepath"
	"testing"
)

// TestUsageUIHeadless renders the Usage page in headless Chromium: the
// quota, its limit and the repositories it counts.
func TestUsageUIHeadless(t *testing.T) {
	browser := uiChromium(t)
	n := startNodeWith(t, t.TempDir(), nodeOptions{args: []string{"--config", ptWriteConfig(t, quotaConfig)}})
	c := newClient(n.URL())
	defer c.close()
	if err := pushImageBlobs(context.Background(), c, "team/web", fill(4096, "web")); err != nil {
		t.Fatal(err)
	}
	uiCheckPage(t, browser, n.URL()+"/ui/#/usage", filepath.Join(t.TempDir(), "usage.png"), []string{
		`data-view="usage"`, `data-state="ready"`, `data-quota="team"`, `data-name="team/web"`, "10.0 KiB", "4.0 KiB",
	})
}
