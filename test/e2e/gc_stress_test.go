package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Online garbage collection under write load: pushers reuse layers between
// images (HEAD then skip), mount them from other repositories, upload the
// rest monolithically or in chunks, move tags and delete some of their own
// images, while collections with grace 0 run back to back. Afterwards
// every image acknowledged and not deleted must validate through every
// member: its manifest, and every blob with the right digest.

// gcStressDuration is how long the collections run (ATOLL_GC_STRESS, a
// Go duration; default 60s).
func gcStressDuration(t *testing.T) time.Duration {
	if s := os.Getenv("ATOLL_GC_STRESS"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("ATOLL_GC_STRESS=%q: %v", s, err)
		}
		return d
	}
	return 60 * time.Second
}

func TestGCStressSingleNode(t *testing.T) {
	n := startNode(t, t.TempDir())
	runGCStress(t, "single node", []string{n.URL()})
}

func TestGCStressCluster(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{})
	var urls []string
	for _, m := range c.members {
		urls = append(urls, m.URL())
	}
	runGCStress(t, "3-member cluster", urls)
}

// stressImage is an image a pusher had acknowledged.
type stressImage struct {
	repo     string
	manifest digest.Digest
	blobs    map[digest.Digest][]byte
}

// gcStress is the shared state of one stress run.
type gcStress struct {
	t     *testing.T
	urls  []string
	pool  [][]byte // layers shared between images
	mu    sync.Mutex
	acked []stressImage // acknowledged and not deleted by the test
	links map[digest.Digest]string
	stats map[string]int
}

func runGCStress(t *testing.T, what string, urls []string) {
	s := &gcStress{t: t, urls: urls, links: map[digest.Digest]string{}, stats: map[string]int{}}
	for i := range 24 {
		s.pool = append(s.pool, []byte(fmt.Sprintf("shared layer %d %s", i, strings.Repeat("x", 2000+i))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), gcStressDuration(t))
	defer cancel()
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); s.push(ctx, p) }()
	}
	scrubs := 0
	wg.Go(func() { scrubs = s.scrub(ctx, urls[len(urls)-1]) }) // never a bad copy where none is
	runs, freed, spared := 0, 0, 0
	gc := newClient(urls[0])
	defer gc.close()
	for ctx.Err() == nil {
		f, sp, err := collectGarbage(context.Background(), gc.base, "0s")
		if err != nil {
			t.Errorf("gc run %d: %v", runs+1, err)
			break
		}
		runs++
		freed += f
		spared += sp
	}
	wg.Wait()
	broken := s.validate()
	s.mu.Lock()
	defer s.mu.Unlock()
	line := fmt.Sprintf("gc stress (%s): %d images acknowledged and kept, %d broken; %d collections with grace 0 freed %d blobs and spared %d in use; %d scrubs alongside; client ops %v",
		what, len(s.acked), broken, runs, freed, spared, scrubs, s.stats)
	t.Log(line)
	reportSummary(line)
	if runs < 2 || freed == 0 || len(s.acked) < 20 || scrubs < 2 {
		t.Errorf("the stress did not exercise the collector: %d runs, %d freed, %d images, %d scrubs", runs, freed, len(s.acked), scrubs)
	}
}

// scrub runs scrubs of every member through base, one after another with
// a pause between them, until ctx ends, and returns how many finished. Nothing on disk is damaged, so
// every one must find every copy good: a scrub that takes a blob being
// pushed or collected for a bad copy would move it aside and break images.
func (s *gcStress) scrub(ctx context.Context, base string) int {
	done := 0
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_atoll/v1/scrub", nil)
		if err != nil {
			s.t.Error(err)
			return done
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				s.t.Errorf("scrub: %v", err)
			}
			return done
		}
		whole := true
		for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
			var l struct {
				Report *struct {
					Member string            `json:"member"`
					Bad    []json.RawMessage `json:"bad"`
					Error  string            `json:"error"`
				} `json:"report"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				s.t.Errorf("scrub line %q: %v", sc.Text(), err)
			}
			switch r := l.Report; {
			case r == nil:
			case len(r.Bad) > 0:
				s.t.Errorf("scrub on %s during pushes and collections found bad copies where none are: %s", r.Member, sc.Text())
			case r.Error != "":
				whole = false
				if ctx.Err() == nil {
					s.t.Errorf("scrub on %s: %s", r.Member, r.Error)
				}
			}
		}
		resp.Body.Close()
		if whole && ctx.Err() == nil {
			done++
		}
		select { // leave the pushes most of the machine
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	return done
}

// collectGarbage runs POST /_atoll/v1/gc on base and returns how many
// blobs all members freed and spared; a member reporting an error fails it.
func collectGarbage(ctx context.Context, base, grace string) (freed, spared int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_atoll/v1/gc?grace="+grace, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("POST /_atoll/v1/gc: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var rep struct {
			Member string `json:"member"`
			Freed  int    `json:"freed"`
			Spared int    `json:"spared"`
			Error  string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			return freed, spared, fmt.Errorf("gc report %q: %w", sc.Text(), err)
		}
		if rep.Error != "" {
			return freed, spared, fmt.Errorf("gc on %s: %s", rep.Member, rep.Error)
		}
		freed += rep.Freed
		spared += rep.Spared
	}
	return freed, spared, sc.Err()
}

func (s *gcStress) count(op string) {
	s.mu.Lock()
	s.stats[op]++
	s.mu.Unlock()
}

// push pushes images until ctx ends: each of two shared layers, one layer
// of its own and a config of its own; then moves tag latest to it; and now
// and then deletes one of its earlier images.
func (s *gcStress) push(ctx context.Context, p int) {
	rng := rand.New(rand.NewPCG(uint64(p), 7))
	var mine []stressImage
	for i := 0; ctx.Err() == nil; i++ {
		c := newClient(s.urls[(p+i)%len(s.urls)])
		repo := fmt.Sprintf("stress/p%d-r%d", p, i%4)
		img := stressImage{repo: repo, blobs: map[digest.Digest][]byte{}}
		layers := [][]byte{s.pool[rng.IntN(len(s.pool))], s.pool[rng.IntN(len(s.pool))],
			[]byte(fmt.Sprintf("own layer %d/%d %d", p, i, rng.Int64()))}
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","pusher":%d,"n":%d}`, p, i))
		ok := true
		for _, b := range append(layers, config) {
			if err := s.putBlob(ctx, c, repo, b, rng); err != nil {
				if ctx.Err() == nil {
					s.t.Errorf("pusher %d: %v", p, err)
				}
				ok = false
				break
			}
			img.blobs[digest.FromBytes(b)] = b
		}
		if !ok {
			c.close()
			return
		}
		m := stressManifest(config, layers)
		tag := "latest"
		if i%3 == 0 {
			tag = fmt.Sprintf("v%d", i)
		}
		_, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/"+tag, http.Header{"Content-Type": {ociManifest}}, m, http.StatusCreated)
		if err != nil {
			c.close()
			if ctx.Err() == nil {
				s.t.Errorf("pusher %d: manifest: %v", p, err)
			}
			return
		}
		img.manifest = digest.FromBytes(m)
		s.count("manifest")
		mine = append(mine, img)
		s.mu.Lock()
		s.acked = append(s.acked, img)
		for d := range img.blobs {
			s.links[d] = repo
		}
		s.mu.Unlock()
		// Delete one of the earlier images now and then: its own blobs
		// become garbage, the shared ones stay referenced elsewhere.
		if i%4 == 3 && len(mine) > 2 {
			k := rng.IntN(len(mine) - 1)
			old := mine[k]
			mine = append(mine[:k], mine[k+1:]...)
			s.forget(old)
			if _, err := c.do(ctx, "DELETE", "/v2/"+old.repo+"/manifests/"+old.manifest.String(), nil, nil, http.StatusAccepted); err != nil && ctx.Err() == nil {
				s.t.Errorf("pusher %d: delete: %v", p, err)
			}
			s.count("delete")
		}
		c.close()
	}
}

// forget drops img from what must validate (before it is deleted).
func (s *gcStress) forget(img stressImage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range s.acked {
		if a.repo == img.repo && a.manifest == img.manifest {
			s.acked = append(s.acked[:i], s.acked[i+1:]...)
			return
		}
	}
}

// putBlob makes blob b present in repo the way clients do: HEAD, and when
// absent a mount from a repository that had it, else an upload.
func (s *gcStress) putBlob(ctx context.Context, c *client, repo string, b []byte, rng *rand.Rand) error {
	d := digest.FromBytes(b)
	r, err := c.do(ctx, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil, nil, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return err
	}
	if r.status == http.StatusOK {
		s.count("reused")
		return nil
	}
	s.mu.Lock()
	from := s.links[d]
	s.mu.Unlock()
	if from != "" && from != repo {
		r, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?mount="+d.String()+"&from="+from, nil, nil, http.StatusCreated, http.StatusAccepted)
		if err != nil {
			return err
		}
		if r.status == http.StatusCreated {
			s.count("mounted")
			return nil
		}
		if loc := r.header.Get("Location"); loc != "" { // not mountable: upload through the session given
			_, err := c.do(ctx, "PUT", withDigest(loc, d), octetStream, b, http.StatusCreated)
			s.count("uploaded")
			return err
		}
	}
	s.count("uploaded")
	if rng.IntN(2) == 0 {
		return c.pushMonolithic(ctx, repo, b)
	}
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	half := len(b) / 2
	if loc, err = c.patchChunk(ctx, loc, b[:half], 0); err != nil {
		return err
	}
	return c.finishUpload(ctx, loc, d, b[half:], int64(half))
}

func stressManifest(config []byte, layers [][]byte) []byte {
	desc := func(mt string, b []byte) string {
		return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, digest.FromBytes(b), len(b))
	}
	var ls []string
	for _, l := range layers {
		ls = append(ls, desc("application/vnd.oci.image.layer.v1.tar", l))
	}
	return []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":` +
		desc("application/vnd.oci.image.config.v1+json", config) + `,"layers":[` + strings.Join(ls, ",") + `]}`)
}

// validate fetches every kept image through every member and returns how
// many are broken anywhere.
func (s *gcStress) validate() int {
	s.mu.Lock()
	acked := append([]stressImage(nil), s.acked...)
	s.mu.Unlock()
	ctx := context.Background()
	broken := 0
	for _, img := range acked {
		var problems []string
		for _, u := range s.urls {
			c := newClient(u)
			if _, _, err := c.getManifest(ctx, img.repo, img.manifest.String()); err != nil {
				problems = append(problems, err.Error())
			}
			for d, b := range img.blobs {
				if err := c.getBlob(ctx, img.repo, d, int64(len(b))); err != nil {
					problems = append(problems, err.Error())
				}
			}
			c.close()
		}
		if len(problems) > 0 {
			broken++
			if broken <= 10 {
				s.t.Errorf("acknowledged image %s@%s is broken: %s", img.repo, img.manifest, strings.Join(problems, "; "))
			}
		}
	}
	return broken
}
