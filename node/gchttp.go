package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/gc"
)

// Garbage collection's member-to-member side (package gc does the
// collecting): POST /_atoll/v1/gc runs a collection on every member and
// streams their reports; POST /_atoll/v1/gc/fence answers the rounds of
// another member's collection. Both take the cluster token.

// gcRoundTimeout bounds one member's answer to a round.
const gcRoundTimeout = 30 * time.Second

// CollectGarbage runs one collection over the blobs this member holds.
func (n *Node) CollectGarbage(ctx context.Context, opts gc.Options) (gc.Report, error) {
	return n.gc.Collect(ctx, opts)
}

// serveGC answers POST /_atoll/v1/gc?dry-run=&grace=&scope=: a collection
// on every live member (scope=local: this one only), streamed as one JSON
// report per line as each member finishes.
func (n *Node) serveGC(w http.ResponseWriter, r *http.Request) {
	if !n.trusted(r) {
		http.Error(w, "cluster token required", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	opts := gc.Options{DryRun: q.Get("dry-run") == "true" || q.Get("dry-run") == "1", Grace: gc.DefaultGrace}
	if g := q.Get("grace"); g != "" {
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 {
			http.Error(w, "bad grace duration", http.StatusBadRequest)
			return
		}
		opts.Grace = d
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	reports := make(chan gc.Report)
	members := []string{n.name}
	if n.cluster != nil && q.Get("scope") != "local" {
		members = append(members, n.views.load().peers()...)
	}
	for _, m := range members {
		go func() { reports <- n.collectOn(r.Context(), m, r.URL.RawQuery, opts) }()
	}
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for range members {
		_ = enc.Encode(<-reports)
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// collectOn runs a collection on member m, here or over HTTP.
func (n *Node) collectOn(ctx context.Context, m, query string, opts gc.Options) gc.Report {
	if m == n.name {
		rep, err := n.gc.Collect(ctx, opts)
		if err != nil {
			rep.Error = err.Error()
		}
		return rep
	}
	rep := gc.Report{Member: m, DryRun: opts.DryRun}
	q, _ := url.ParseQuery(query)
	q.Set("scope", "local")
	req, err := n.members.newRequest(ctx, http.MethodPost, m, "/_atoll/v1/gc?"+q.Encode(), nil)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	resp, err := n.members.do(req)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		rep.Error = fmt.Sprintf("%s: %v", resp.Status, err)
	}
	return rep
}

// serveFence answers POST /_atoll/v1/gc/fence from a collecting member.
func (n *Node) serveFence(w http.ResponseWriter, r *http.Request) {
	if n.cluster == nil || !n.trusted(r) {
		http.Error(w, "cluster token required", http.StatusUnauthorized)
		return
	}
	var round gc.Round
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&round); err != nil {
		http.Error(w, "bad fence request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(n.gc.Answer(round))
}

// gcMembers is gc.Members over this member's view of the cluster.
type gcMembers struct{ n *Node }

func (g gcMembers) Names() []string {
	ms := append(g.n.views.load().peers(), g.n.name)
	slices.Sort(ms)
	return ms
}

// Ask runs round r on member m over HTTP.
func (g gcMembers) Ask(ctx context.Context, m string, r gc.Round) (gc.Reply, error) {
	var reply gc.Reply
	if err := g.n.members.ask(ctx, m, "/_atoll/v1/gc/fence", gcRoundTimeout, r, &reply); err != nil {
		return gc.Reply{}, fmt.Errorf("member %s: %w", m, err)
	}
	return reply, nil
}

// CatchUp pulls from every live peer what it had applied when asked and
// this member lacks.
func (g gcMembers) CatchUp(ctx context.Context) error {
	return g.n.metasync.CatchUp(ctx)
}

// blobExists reports whether some member holds blob d now; the fence asks
// it about blobs a collection deleted recently.
func (n *Node) blobExists(ctx context.Context, d digest.Digest) bool {
	if _, err := n.local.Stat(ctx, d); err == nil {
		return true
	}
	if n.cluster == nil {
		return false
	}
	for _, m := range n.views.load().peers() {
		if has, err := n.cluster.Has(ctx, m, []digest.Digest{d}); err == nil && has[0] {
			return true
		}
	}
	return false
}

func (n *Node) fencePath() string { return filepath.Join(n.cfg.DataDir, "fence.json") }

// saveFence saves what clients were told every second, and once more on
// the way out.
func (n *Node) saveFence(ctx context.Context) {
	failing := false
	save := func(context.Context) {
		err := n.fence.Save(n.fencePath())
		if err != nil && !failing {
			n.log.Warn("saving what clients were told", "err", err)
		}
		failing = err != nil
	}
	every(ctx, time.Second, false, save)
	save(ctx)
}
