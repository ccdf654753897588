// Package scrub reads back every blob a member holds and checks its bytes
// against its digest: a disk that rots, a sector that no longer reads, a
// file an operator's tool truncated. A push verifies a blob once, when it
// arrives; nothing after that would notice, and a blob's copy is never
// replaced by a later push of the same digest, so a bad copy would be
// served (and fail every pull) for as long as it stays.
//
// A copy found bad is moved aside where the store can (the filesystem
// store's quarantine/), so that the blob is unknown here; then, in a
// cluster, a good copy is fetched from another member that holds one.
// Where no member has a good copy the blob is lost, and the report names
// the repositories that link it, whose images must be pushed again.
//
// Then it reads back the member's manifest records (Deps.Records): the
// metadata database keeps no checksum of them either. A bad record is
// replaced in place by another member's good one; where none has one the
// manifest is lost, and the report names the repositories that link it.
//
// A scrub reads one blob at a time, at most Options.Rate bytes a second,
// and reports its progress every few seconds. Collections, pushes and
// rebalancing go on meanwhile: a blob deleted while it is read is skipped.
package scrub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
)

// Store is the member's blob store, as a scrub reads it.
type Store interface {
	storage.BlobWalker
	Open(ctx context.Context, d digest.Digest) (storage.Blob, error)
}

// Records are a member's manifest records, as a scrub checks them
// (metadb.Store): bad is called with each whose bytes do not match its
// digest.
type Records interface {
	CheckRecords(ctx context.Context, bad func(metadb.BadRecord)) (checked int, err error)
}

// Quarantiner is the capability of a store to move a bad copy aside
// (filesystem.Store). Quarantine moves blob d, which b reads, and returns
// where it went, or storage.ErrBlobUnknown when that copy is no longer
// the blob's (deleted, or deleted and stored again); a store without it
// only reports.
type Quarantiner interface {
	Quarantine(ctx context.Context, d digest.Digest, b storage.Blob) (string, error)
}

// Deps are what a scrub works with.
type Deps struct {
	// Self names the member in reports.
	Self string
	// Blobs is the member's own blob store.
	Blobs Store
	// Repair stores a good copy of blob d here, from another member, and
	// says where it came from (or, for a cache, where it will); nil on a
	// member on its own.
	Repair func(ctx context.Context, d digest.Digest) (from string, err error)
	// Repos lists the repositories that link blob d, for the report of a
	// blob lost; nil: none are named.
	Repos func(d digest.Digest) []string
	// Records are the member's manifest records, checked after its
	// blobs; nil: none.
	Records Records
	// MendRecord replaces the bad record of manifest d here with another
	// member's good one and says whose; nil on a member on its own.
	MendRecord func(ctx context.Context, d digest.Digest) (from string, err error)
	// Log receives progress and every bad copy found.
	Log *slog.Logger
}

// Options tune one scrub.
type Options struct {
	// Rate is how many bytes a second it reads at most; 0: as fast as
	// the disk and the hash go.
	Rate int64
	// Progress, when set, is called every Every with how far the scrub
	// got, and once at its end.
	Progress func(Progress)
	// Every is how often progress is reported; default ProgressEvery.
	Every time.Duration
}

// ProgressEvery is how often a scrub reports its progress by default;
// the log has a line every logEvery.
const (
	ProgressEvery = 5 * time.Second
	logEvery      = time.Minute
)

// Progress is how far a scrub got.
type Progress struct {
	Member  string `json:"member"`
	Checked int    `json:"checked"` // blobs read so far
	Bytes   int64  `json:"bytes"`   // bytes read so far
	// Blobs and TotalBytes are what the store held when the scrub began
	// (0: it does not count them), raised to what was read when blobs
	// arrived meanwhile (pushes, a rebalance after a member left).
	Blobs      int           `json:"blobs"`
	TotalBytes int64         `json:"totalBytes"`
	Bad        int           `json:"bad"` // bad copies found so far
	Elapsed    time.Duration `json:"elapsed"`
}

// Report is what a scrub found and did.
type Report struct {
	Member    string        `json:"member"`
	Checked   int           `json:"checked"`             // blobs read whole
	Bytes     int64         `json:"bytes"`               // their size
	Skipped   int           `json:"skipped"`             // deleted before they were read
	Manifests int           `json:"manifests,omitempty"` // manifest records read back
	Bad       []Bad         `json:"bad,omitempty"`
	Duration  time.Duration `json:"duration"`
	Error     string        `json:"error,omitempty"`
}

// Lost counts the bad copies, of blobs and manifest records, of which no
// good copy is known (Bad.Lost).
func (r Report) Lost() int {
	n := 0
	for _, b := range r.Bad {
		if b.Lost {
			n++
		}
	}
	return n
}

// ErrNoGoodCopy is what Deps.Repair returns (wrapped) when every other
// member answered that it holds no copy of the blob, or a bad one.
var ErrNoGoodCopy = errors.New("no other member holds a good copy")

// Bad is one copy whose bytes do not match its digest: of a blob, or of
// a manifest's record.
type Bad struct {
	Digest digest.Digest `json:"digest"`
	// Manifest says it is a manifest's record in the metadata, not a
	// blob; it is mended in place, never moved aside.
	Manifest bool  `json:"manifest,omitempty"`
	Size     int64 `json:"size"`
	// Problem says what is wrong: what the bytes hash to, or the read
	// error.
	Problem string `json:"problem"`
	// Quarantined is where the bad copy went; empty: it stayed.
	Quarantined string `json:"quarantined,omitempty"`
	// Repaired says a good copy replaced it, from From.
	Repaired bool   `json:"repaired"`
	From     string `json:"from,omitempty"`
	// Lost says no good copy is known: the member is on its own, or no
	// other member holds one. Neither repaired nor lost: copying one
	// failed (Error), and another scrub will try again.
	Lost bool `json:"lost"`
	// Repositories link the blob; listed when it was not repaired.
	Repositories []string `json:"repositories,omitempty"`
	// Error says why it was not moved aside or not repaired.
	Error string `json:"error,omitempty"`
}

// readSize is how much a scrub reads at a time.
const readSize = 1 << 20

// Run scrubs every blob deps.Blobs holds, until done or ctx ends; a
// report of a scrub cut short says so in Error.
func Run(ctx context.Context, deps Deps, opts Options) Report {
	if opts.Every <= 0 {
		opts.Every = ProgressEvery
	}
	s := scrubber{deps: deps, opts: opts, start: time.Now(), buf: make([]byte, readSize)}
	s.report.Member = deps.Self
	if err := s.run(ctx); err != nil {
		s.report.Error = err.Error()
	}
	s.report.Duration = time.Since(s.start)
	return s.report
}

type scrubber struct {
	deps  Deps
	opts  Options
	start time.Time
	buf   []byte
	read  int64 // bytes read, for the rate
	// reading is how much of the blob being read is read
	reading int64
	report  Report
	// progress: the store's count when the scrub began, the last report
	// and the last log line
	blobs        int
	totalBytes   int64
	last, logged time.Time
}

type held struct {
	d    digest.Digest
	size int64
}

func (s *scrubber) run(ctx context.Context) error {
	if u, ok := s.deps.Blobs.(storage.UsageReporter); ok {
		n, bytes := u.Usage()
		s.blobs, s.totalBytes = int(n), bytes
	}
	s.last, s.logged = s.start, s.start
	s.log().Info("scrub started", "blobs", s.blobs, "bytes", s.totalBytes, "rate", s.opts.Rate)
	// Each blob is read as the walk comes to it: a list of every digest
	// first would take a gigabyte at ten million blobs.
	if s.deps.Blobs != nil {
		err := s.deps.Blobs.Walk(ctx, func(d digest.Digest, size int64) error { return s.check(ctx, held{d, size}) })
		if err != nil {
			return err
		}
	}
	if s.deps.Records != nil {
		if err := s.checkRecords(ctx); err != nil {
			return err
		}
	}
	s.progress()
	s.log().Info("scrub done", "checked", s.report.Checked, "bytes", s.report.Bytes, "manifests", s.report.Manifests, "bad", len(s.report.Bad),
		"lost", s.report.Lost(), "took", time.Since(s.start).Round(time.Millisecond))
	return nil
}

// check reads blob h whole and deals with a bad copy. It returns an error
// only when the scrub cannot go on.
func (s *scrubber) check(ctx context.Context, h held) error {
	if !h.d.Algorithm().Available() {
		s.report.Skipped++ // a store accepts no digest it cannot verify
		return nil
	}
	b, err := s.deps.Blobs.Open(ctx, h.d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		s.report.Skipped++ // collected or moved since the walk
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", h.d, err)
	}
	defer b.Close()
	defer readOnce(b)() // before Close
	got, n, err := s.hash(ctx, h.d.Algorithm(), b)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	s.report.Checked++
	s.report.Bytes += n
	var problem string
	switch {
	case err != nil:
		problem = fmt.Sprintf("reading it failed after %d bytes: %v", n, err)
	case got != h.d:
		problem = fmt.Sprintf("its %d bytes hash to %s", n, got)
	default:
		return nil
	}
	s.bad(ctx, Bad{Digest: h.d, Size: b.Size(), Problem: problem}, b)
	return nil
}

// hash reads r to its end at no more than the rate and returns its
// digest and length.
func (s *scrubber) hash(ctx context.Context, a digest.Algorithm, r io.Reader) (digest.Digest, int64, error) {
	h := a.Hash()
	var n int64
	defer func() { s.reading = 0 }()
	for {
		k, err := r.Read(s.buf)
		h.Write(s.buf[:k])
		n += int64(k)
		if s.reading = n; time.Since(s.last) >= s.opts.Every {
			s.progress() // within a blob too: a large one at a low rate takes minutes
		}
		if errors.Is(err, io.EOF) {
			return digest.NewDigest(a, h), n, nil
		}
		if err != nil {
			return "", n, err
		}
		if err := s.pace(ctx, int64(k)); err != nil {
			return "", n, err
		}
	}
}

// pace sleeps as long as reading k more bytes takes at the rate.
func (s *scrubber) pace(ctx context.Context, k int64) error {
	s.read += k
	if s.opts.Rate <= 0 {
		return ctx.Err()
	}
	ahead := time.Duration(float64(s.read)/float64(s.opts.Rate)*float64(time.Second)) - time.Since(s.start)
	if ahead <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(ahead)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// bad moves the bad copy b aside and replaces it with a good one where it
// can, and adds it to the report, unless it was deleted meanwhile.
func (s *scrubber) bad(ctx context.Context, bad Bad, b storage.Blob) {
	bad, gone := s.mend(ctx, bad, b)
	if gone {
		// Collected meanwhile, or collected and stored again (verified):
		// the bad copy is gone.
		s.log().Info("scrub: a bad copy was deleted before it could be moved aside", "digest", bad.Digest, "problem", bad.Problem)
		s.report.Skipped++
		return
	}
	if !bad.Repaired && s.deps.Repos != nil {
		bad.Repositories = s.deps.Repos(bad.Digest)
	}
	s.report.Bad = append(s.report.Bad, bad)
	s.log().Error("scrub: bad copy of a blob", "digest", bad.Digest, "problem", bad.Problem, "quarantined", bad.Quarantined,
		"repaired", bad.Repaired, "lost", bad.Lost, "repositories", bad.Repositories, "err", bad.Error)
}

// mend moves the bad copy b aside and asks for a good one; gone says the
// copy was no longer the blob's.
func (s *scrubber) mend(ctx context.Context, bad Bad, b storage.Blob) (_ Bad, gone bool) {
	q, ok := s.deps.Blobs.(Quarantiner)
	if !ok {
		bad.Error, bad.Lost = "this store cannot move a copy aside; it stays", true
		return bad, false
	}
	where, err := q.Quarantine(ctx, bad.Digest, b)
	if errors.Is(err, storage.ErrBlobUnknown) {
		return bad, true
	}
	if err != nil {
		bad.Error = fmt.Sprintf("moving it aside: %v", err)
		return bad, false
	}
	bad.Quarantined = where
	if s.deps.Repair == nil {
		bad.Error, bad.Lost = "no other member to copy it from", true
		return bad, false
	}
	from, err := s.deps.Repair(ctx, bad.Digest)
	if err != nil {
		bad.Error, bad.Lost = fmt.Sprintf("copying it from another member: %v", err), errors.Is(err, ErrNoGoodCopy)
		return bad, false
	}
	bad.Repaired, bad.From = true, from
	return bad, false
}

func (s *scrubber) progress() {
	s.last = time.Now()
	p := Progress{Member: s.deps.Self, Checked: s.report.Checked + s.report.Skipped, Blobs: s.blobs, Bytes: s.report.Bytes + s.reading,
		TotalBytes: s.totalBytes, Bad: len(s.report.Bad), Elapsed: time.Since(s.start)}
	if s.blobs > 0 {
		p.Blobs, p.TotalBytes = max(p.Blobs, p.Checked), max(p.TotalBytes, p.Bytes)
	}
	if time.Since(s.logged) >= logEvery {
		s.logged = time.Now()
		s.log().Info("scrub progress", "checked", p.Checked, "of", p.Blobs, "bytes", p.Bytes, "of_bytes", p.TotalBytes, "bad", p.Bad)
	}
	if s.opts.Progress != nil {
		s.opts.Progress(p)
	}
}

func (s *scrubber) log() *slog.Logger {
	if s.deps.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.deps.Log
}

// checkRecords reads back the member's manifest records and mends each
// bad one where another member has it good. Records are not paced: a
// million manifests are a few gigabytes, read in seconds.
func (s *scrubber) checkRecords(ctx context.Context) error {
	n, err := s.deps.Records.CheckRecords(ctx, func(b metadb.BadRecord) {
		s.badRecord(ctx, Bad{Digest: b.Digest, Manifest: true, Problem: b.Problem, Repositories: b.Repositories})
	})
	s.report.Manifests = n
	return err
}

// badRecord mends a bad manifest record where it can, and adds it to the
// report unless the record was deleted meanwhile.
func (s *scrubber) badRecord(ctx context.Context, bad Bad) {
	if s.deps.MendRecord == nil {
		bad.Error, bad.Lost = "no other member to copy it from", true
	} else {
		switch from, err := s.deps.MendRecord(ctx, bad.Digest); {
		case errors.Is(err, metadb.ErrRecordGone):
			s.report.Skipped++
			return
		case err == nil:
			bad.Repaired, bad.From, bad.Repositories = true, from, nil
		default:
			bad.Error, bad.Lost = fmt.Sprintf("copying it from another member: %v", err), errors.Is(err, ErrNoGoodCopy)
		}
	}
	s.report.Bad = append(s.report.Bad, bad)
	s.log().Error("scrub: bad manifest record", "digest", bad.Digest, "problem", bad.Problem,
		"repaired", bad.Repaired, "from", bad.From, "lost", bad.Lost, "repositories", bad.Repositories, "err", bad.Error)
}
