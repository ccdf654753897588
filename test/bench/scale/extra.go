package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
)

// bigPush pushes one layer of size bytes through a member that does not
// own it (3 members, R=2, every link capped at mbit) in one monolithic
// PUT, and reports the time from the last byte handed to the connection
// to the 201: what the client waits for once it has sent everything.
func bigPush(cfg config, size int64, mbit int) {
	c := cfg
	c.mbit = mbit
	fmt.Fprintf(os.Stderr, "big push: hashing %d MiB\n", size>>20)
	h := sha256.New()
	if _, err := io.Copy(h, layer(size)); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
	d := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))

	t := &runT{}
	defer t.done()
	ms := startCluster(t, c, 3)
	owners := ring.New(ring.Config{}, []string{ms[0].name, ms[1].name, ms[2].name}).Owners(d, c.replicas)
	var via *member
	for _, m := range ms {
		if !slices.Contains(owners, m.name) {
			via = m
		}
	}
	if via == nil {
		t.Fatalf("every member owns %s", d)
	}
	resp, err := http.Post(via.base()+"/v2/big/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("POST upload: %s", resp.Status)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = via.base() + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	body := &lastByte{r: layer(size)}
	req, err := http.NewRequest(http.MethodPut, loc+sep+"digest="+d.String(), body)
	if err != nil {
		t.Fatalf("%v", err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err = http.DefaultClient.Do(req)
	done := time.Now()
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	last := time.Unix(0, body.at.Load())
	fmt.Printf("\nbig push: %d MiB through non-owner %s (owners %v), links %d Mbit/s, R=%d: %.1fs in all (%.1f MB/s); last byte sent to 201: %v\n",
		size>>20, via.name, owners, mbit, c.replicas, done.Sub(start).Seconds(),
		float64(size)/done.Sub(start).Seconds()/1e6, done.Sub(last).Round(time.Millisecond))
}

// layer is a reproducible stream of size pseudo-random bytes.
func layer(size int64) io.Reader {
	return io.LimitReader(prng{rand.NewChaCha8([32]byte{7})}, size)
}

type prng struct{ c *rand.ChaCha8 }

func (p prng) Read(b []byte) (int, error) { return p.c.Read(b) }

// lastByte records when its reader hit EOF: the last byte handed on.
type lastByte struct {
	r  io.Reader
	at atomic.Int64
}

func (l *lastByte) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err == io.EOF {
		l.at.Store(time.Now().UnixNano())
	}
	return n, err
}

// slowLink measures 4 members with every link at cfg.mbit but one at
// slow, against the same 4 with no slow link (the table's last row).
func slowLink(cfg config, blobs [][]byte, slow int) {
	t := &runT{}
	defer t.done()
	ms := startCluster(t, cfg, 4)
	ms[3].host.Limit(slow)
	push, err := pushAll(cfg, ms, blobs)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = waitPlaced(ctx, ms, int64(len(blobs)*cfg.replicas))
	cancel()
	if err != nil {
		t.Fatalf("%v", err)
	}
	pull, err := pullAll(cfg, ms, blobs)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	fmt.Printf("\none slow link: 4 members, 3 links at %d Mbit/s and %s's at %d Mbit/s: push %.1f MB/s, pull %.1f MB/s\n",
		cfg.mbit, ms[3].name, slow, push, pull)
}
