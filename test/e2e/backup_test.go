package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBackupRestore: `atoll backup` copies a member's metadata.db while
// pushes go on; put back in place of the file with the member stopped, it
// brings back every image acknowledged before the backup began, each
// pulling whole, and nothing pushed after it.
func TestBackupRestore(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ic := newGGCRClient(n.Addr(), newAckLedger(), true)
	before := newClusterImages(t, "backup/before", 8, 2048)
	pushAllImages(t, ic, before)

	var (
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		pushed int
	)
	wg.Go(func() { // pushes go on while the backup is taken
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := ic.push(ctx, newClusterImage(t, "backup/during", fmt.Sprint("v", i), 1, 1024)); err != nil {
				t.Errorf("push during the backup: %v", err)
				return
			}
			pushed = i + 1
		}
	})
	time.Sleep(200 * time.Millisecond)
	file := filepath.Join(t.TempDir(), "metadata-backup.db")
	out, err := exec.CommandContext(ctx, atollBin, "backup", "--addr", n.URL(), "-o", file).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("atoll backup: %v\n%s", err, out)
	}
	t.Logf("atoll backup, %d pushes alongside: %s", pushed, strings.TrimSpace(string(out)))
	if !strings.Contains(string(out), "wrote "+file) {
		t.Errorf("atoll backup says %q, want it to name the file it wrote", out)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("atoll backup left %s.partial: %v", file, err)
	}
	after := newClusterImage(t, "backup/after", "v1", 1, 1024)
	if err := ic.push(ctx, after); err != nil {
		t.Fatal(err)
	}

	n.Stop()
	if err := os.Rename(file, filepath.Join(n.dataDir, "metadata.db")); err != nil {
		t.Fatal(err)
	}
	n.start()
	pullAndValidate(t, before, ic)
	c := newClient(n.URL())
	defer c.close()
	if _, err := c.do(ctx, http.MethodHead, "/v2/backup/after/manifests/v1", manifestAccept, nil, http.StatusNotFound); err != nil {
		t.Errorf("an image pushed after the backup, once it is restored: %v", err)
	}
}
