package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/gc/fence"
	"github.com/atollhq/atoll/node/metasync"
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

// gcHTTP serves garbage collection's endpoints: a collection here or on
// every member, and the rounds of another member's collection.
type gcHTTP struct {
	self    string
	gc      *gc.Collector
	views   *views        // the members to collect on; empty on its own
	members *memberClient // asks them
	trusted func(*http.Request) bool
}

// serveGC answers POST /_atoll/v1/gc?dry-run=&grace=&scope=: a collection
// on every live member (scope=local: this one only), streamed as one JSON
// report per line as each member finishes.
func (g *gcHTTP) serveGC(w http.ResponseWriter, r *http.Request) {
	if !g.trusted(r) {
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
	members := []string{g.self}
	if v := g.views.load(); v != nil && q.Get("scope") != "local" {
		members = append(members, v.peers()...)
	}
	for _, m := range members {
		go func() { reports <- g.collectOn(r.Context(), m, r.URL.RawQuery, opts) }()
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
func (g *gcHTTP) collectOn(ctx context.Context, m, query string, opts gc.Options) gc.Report {
	if m == g.self {
		rep, err := g.gc.Collect(ctx, opts)
		if err != nil {
			rep.Error = err.Error()
		}
		return rep
	}
	rep := gc.Report{Member: m, DryRun: opts.DryRun}
	q, _ := url.ParseQuery(query)
	q.Set("scope", "local")
	req, err := g.members.newRequest(ctx, http.MethodPost, m, "/_atoll/v1/gc?"+q.Encode(), nil)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	resp, err := g.members.do(req)
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
func (g *gcHTTP) serveFence(w http.ResponseWriter, r *http.Request) {
	var round gc.Round
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&round); err != nil {
		http.Error(w, "bad fence request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(g.gc.Answer(round))
}

// gcMembers is gc.Members over this member's view of the cluster.
type gcMembers struct {
	self    string
	views   *views
	members *memberClient
	sync    *metasync.Replicator
}

func (g gcMembers) Names() []string {
	ms := append(g.views.load().peers(), g.self)
	slices.Sort(ms)
	return ms
}

// Ask runs round r on member m over HTTP.
func (g gcMembers) Ask(ctx context.Context, m string, r gc.Round) (gc.Reply, error) {
	var reply gc.Reply
	if err := g.members.ask(ctx, m, "/_atoll/v1/gc/fence", gcRoundTimeout, r, &reply); err != nil {
		return gc.Reply{}, fmt.Errorf("member %s: %w", m, err)
	}
	return reply, nil
}

// CatchUp pulls from every live peer what it had applied when asked and
// this member lacks.
func (g gcMembers) CatchUp(ctx context.Context) error {
	return g.sync.CatchUp(ctx)
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
		if has, err := n.cluster.Client().Has(ctx, m, []digest.Digest{d}); err == nil && has[0] {
			return true
		}
	}
	return false
}

// fencePath is where the fence of the member with data directory dir is
// saved.
func fencePath(dir string) string { return filepath.Join(dir, "fence.json") }

// saveFence saves what clients were told (f) to path every second, and
// once more on the way out.
func saveFence(ctx context.Context, f *fence.Fence, path string, log *slog.Logger) {
	failing := false
	save := func(context.Context) {
		err := f.Save(path)
		if err != nil && !failing {
			log.Warn("saving what clients were told", "err", err)
		}
		failing = err != nil
	}
	every(ctx, time.Second, false, save)
	save(ctx)
}
