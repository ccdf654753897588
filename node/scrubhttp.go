package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/scrub"
	"github.com/atollhq/atoll/storage/diskspace"
)

// scrubPath runs a scrub (package scrub) on every member, or on this one
// with scope=local: POST scrubPath?rate=&scope=.
const scrubPath = "/_atoll/v1/scrub"

// ScrubLine is one line of scrubPath's answer, a JSON object a line: a
// member's progress, every scrub.ProgressEvery, or its report, once.
type ScrubLine struct {
	Progress *scrub.Progress `json:"progress,omitempty"`
	Report   *scrub.Report   `json:"report,omitempty"`
}

// scrubHTTP serves scrubPath.
type scrubHTTP struct {
	deps scrub.Deps // the member's own blobs: its disk, or the bucket
	// cache is the member's disk cache of the bucket's blobs; nil off S3.
	cache   *scrub.Deps
	views   *views        // the members to scrub; empty on its own
	members *memberClient // asks them
	// shared says every member reads one bucket: one member reads it, the
	// others their disk caches.
	shared bool
	// every is how often a scrub reports progress; a member's scrub
	// that says nothing for idleEvery times as long is given up.
	every   time.Duration
	trusted func(*http.Request) bool
	metrics *metrics
	running sync.Mutex // one scrub at a time on this member
}

// newScrubHTTP wires a scrub of the member's own blobs: on local disks in
// a cluster a bad copy is replaced from another member. On S3 the bucket
// is read by one member, a bad object only reported; each member's disk
// cache is read too, and a bad cached copy dropped, to be read again from
// the bucket.
func (n *Node) newScrubHTTP() *scrubHTTP {
	s := &scrubHTTP{deps: scrub.Deps{Self: n.name, Blobs: n.local, Repos: n.meta.BlobRepos, Records: n.meta, Log: n.log},
		views: &n.views, members: n.members, shared: n.cache != nil, every: scrub.ProgressEvery, trusted: n.trusted, metrics: n.metrics}
	if n.cfg.Cluster.Fast {
		s.every = time.Second
	}
	if n.refetch != nil {
		s.deps.Repair = n.refetch.repair
	}
	if n.cluster != nil {
		s.deps.MendRecord = newRecordMender(n).mendRecord
	}
	if n.cache != nil {
		s.cache = &scrub.Deps{Self: n.name + " (disk cache)", Blobs: n.cache.Disk(), Log: n.log,
			Repair: func(_ context.Context, d digest.Digest) (string, error) {
				n.cache.Forget(d)
				return "the bucket, on the next read", nil
			}}
	}
	return s
}

// idleEvery: a member whose scrub sent no line for this many progress
// intervals is taken for stopped (frozen, cut off) and its scrub ended.
const idleEvery = 6

// serve answers POST scrubPath: the scrub of each member streamed as
// ScrubLines as they come, one member's interleaved with another's.
func (s *scrubHTTP) serve(w http.ResponseWriter, r *http.Request) {
	if !s.trusted(r) {
		http.Error(w, "cluster token required", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	opts := scrub.Options{Every: s.every}
	if v := q.Get("rate"); v != "" {
		n, err := diskspace.ParseSize(v)
		if err != nil || n < 0 {
			http.Error(w, "bad rate: want bytes a second, such as 100MiB", http.StatusBadRequest)
			return
		}
		opts.Rate = n
	}
	bucket := q.Get("bucket") != "0"
	members := []string{s.deps.Self}
	if v := s.views.load(); v != nil && q.Get("scope") != "local" {
		members = append(members, v.peers()...)
	}
	lines := make(chan ScrubLine)
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.scrubOn(r.Context(), m, opts, bucket, lines)
		}()
	}
	go func() {
		wg.Wait()
		close(lines)
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for line := range lines {
		_ = enc.Encode(line)
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// scrubOn scrubs member m, here or over HTTP, and sends its lines, the
// last of them its reports. On a shared bucket only this member reads the
// bucket (when bucket is set), the others their disk caches.
func (s *scrubHTTP) scrubOn(ctx context.Context, m string, opts scrub.Options, bucket bool, lines chan<- ScrubLine) {
	send := func(l ScrubLine) {
		select {
		case lines <- l:
		case <-ctx.Done():
		}
	}
	if m == s.deps.Self {
		for _, rep := range s.scrubHere(ctx, opts, func(p scrub.Progress) { send(ScrubLine{Progress: &p}) }, bucket) {
			send(ScrubLine{Report: &rep})
		}
		return
	}
	q := url.Values{"scope": {"local"}, "rate": {strconv.FormatInt(opts.Rate, 10)}}
	if s.shared {
		q.Set("bucket", "0")
	}
	if err := s.scrubRemote(ctx, m, q, send); err != nil {
		send(ScrubLine{Report: &scrub.Report{Member: m, Error: err.Error()}})
	}
}

// scrubHere runs a scrub on this member, unless one runs already: of its
// disk cache, if it has one, and of its blobs (on a shared bucket, only
// when bucket is set) and manifest records. It returns a report of each.
func (s *scrubHTTP) scrubHere(ctx context.Context, opts scrub.Options, progress func(scrub.Progress), bucket bool) []scrub.Report {
	if !s.running.TryLock() {
		return []scrub.Report{{Member: s.deps.Self, Error: "a scrub is running on this member already"}}
	}
	defer s.running.Unlock()
	opts.Progress = progress
	var reps []scrub.Report
	if s.cache != nil {
		reps = append(reps, s.run(ctx, *s.cache, opts))
	}
	deps := s.deps
	if s.shared && !bucket { // its own manifest records all the same
		deps.Blobs = nil
	}
	return append(reps, s.run(ctx, deps, opts))
}

// run runs one scrub and counts it in the metrics.
func (s *scrubHTTP) run(ctx context.Context, deps scrub.Deps, opts scrub.Options) scrub.Report {
	rep := scrub.Run(ctx, deps, opts)
	s.metrics.scrubBytes.Add(float64(rep.Bytes))
	for _, b := range rep.Bad {
		outcome := "unrepaired"
		switch {
		case b.Repaired:
			outcome = "repaired"
		case b.Lost:
			outcome = "lost"
		}
		counter := s.metrics.scrubBad
		if b.Manifest {
			counter = s.metrics.scrubBadRecords
		}
		counter.WithLabelValues(outcome).Inc()
	}
	if rep.Error == "" {
		s.metrics.scrubFinished.SetToCurrentTime()
	}
	return rep
}

// scrubRemote passes on member m's lines; an error when m did not answer
// with a report, or went silent for idleEvery progress intervals.
func (s *scrubHTTP) scrubRemote(ctx context.Context, m string, q url.Values, send func(ScrubLine)) error {
	w := watchIdle(ctx, m, time.Duration(idleEvery)*s.every)
	return w.end(s.readRemote(w.ctx, m, q, func(l ScrubLine) {
		w.kick()
		send(l)
	}))
}

func (s *scrubHTTP) readRemote(ctx context.Context, m string, q url.Values, send func(ScrubLine)) error {
	req, err := s.members.newRequest(ctx, http.MethodPost, m, scrubPath+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := s.members.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", m, resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	reported := false
	for {
		var l ScrubLine
		err := dec.Decode(&l)
		if errors.Is(err, io.EOF) && reported {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: its answer ended before its report: %w", m, err)
		}
		send(l)
		reported = reported || l.Report != nil
	}
}

// scheduledScrubs scrubs this member's blobs every Config.Scrub.Interval
// (none when 0), counted from the last scheduled scrub that finished
// (scrub.Schedule). On a shared bucket one member reads it, the ring's
// owner of "scrub", and every member its disk cache.
func (n *Node) scheduledScrubs(ctx context.Context) {
	cfg := n.cfg.Scrub
	if cfg.Interval <= 0 {
		return
	}
	sched := scrub.Schedule{Path: filepath.Join(n.cfg.DataDir, "scrub.json"), Interval: cfg.Interval}
	mine := func() bool {
		return !n.scrub.shared || clusterWork{self: n.name, cluster: n.cluster, views: &n.views}.owns("scrub")
	}
	// A scrub due already waits until the member has served a while; one
	// that failed is tried again after as long.
	delay := min(cfg.Interval, time.Minute)
	earliest := time.Now().Add(delay)
	for {
		next, err := sched.Next(time.Now())
		if err != nil {
			n.log.Warn("scheduled scrub", "err", err)
		}
		t := time.NewTimer(time.Until(later(next, earliest)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		failed := false
		for _, rep := range n.scrub.scrubHere(ctx, scrub.Options{Rate: cfg.Rate}, nil, mine()) {
			if rep.Error != "" {
				n.log.Warn("scheduled scrub did not finish", "of", rep.Member, "err", rep.Error)
				failed = true
			}
		}
		if failed {
			if ctx.Err() != nil {
				return
			}
			earliest = time.Now().Add(delay)
			continue
		}
		if err := sched.Done(time.Now()); err != nil {
			n.log.Warn("scheduled scrub", "err", err)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
