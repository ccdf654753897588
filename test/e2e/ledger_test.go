package e2e

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// blobKey names a blob, or a manifest, in one repository.
type blobKey struct {
	repo string
	d    digest.Digest
}

// tagRef names a tag in one repository.
type tagRef struct{ repo, tag string }

// tagPut is one manifest PUT by tag.
type tagPut struct {
	d     digest.Digest
	sent  time.Time
	acked time.Time // zero until the registry answered 201
}

// session is an upload session a writer opened and has not finished.
type session struct {
	repo  string
	loc   string
	data  []byte
	acked int64 // bytes the registry acknowledged with 202
}

// ledger is what the writers tried and what the registry acknowledged.
// Its methods may be called concurrently.
type ledger struct {
	mu        sync.Mutex
	blobs     map[blobKey]int64 // acknowledged blobs and their sizes
	tried     map[blobKey]int64 // every blob push started, acknowledged or not
	manifests map[blobKey]bool  // acknowledged manifests
	tags      map[tagRef][]*tagPut
	sessions  map[*session]bool
	bytes     int64 // acknowledged blob bytes
	errs      []string
}

func newLedger() *ledger {
	return &ledger{
		blobs:     map[blobKey]int64{},
		tried:     map[blobKey]int64{},
		manifests: map[blobKey]bool{},
		tags:      map[tagRef][]*tagPut{},
		sessions:  map[*session]bool{},
	}
}

func (l *ledger) tryBlob(k blobKey, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tried[k] = size
}

func (l *ledger) ackBlob(k blobKey, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.blobs[k]; !ok {
		l.bytes += size
	}
	l.blobs[k] = size
}

// tryManifest records a manifest PUT about to be sent; tag may be empty.
func (l *ledger) tryManifest(repo, tag string, d digest.Digest) *tagPut {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &tagPut{d: d, sent: time.Now()}
	if tag != "" {
		k := tagRef{repo, tag}
		l.tags[k] = append(l.tags[k], p)
	}
	return p
}

func (l *ledger) ackManifest(repo string, d digest.Digest, p *tagPut) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	p.acked = now
	l.manifests[blobKey{repo, d}] = true
}

func (l *ledger) openSession(repo, loc string, data []byte) *session {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &session{repo: repo, loc: loc, data: data}
	l.sessions[s] = true
	return s
}

func (l *ledger) sessionAcked(s *session, loc string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s.loc, s.acked = loc, n
}

func (l *ledger) closeSession(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.sessions, s)
}

// fail records server misbehaviour seen while the member was alive.
func (l *ledger) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err.Error())
}

func (l *ledger) takeErrors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errs
	l.errs = nil
	return errs
}

type ledgerCounts struct{ blobs, manifests, bytes int64 }

func (l *ledger) counts() ledgerCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ledgerCounts{int64(len(l.blobs)), int64(len(l.manifests)), l.bytes}
}

// ledgerView is a copy of the ledger for verify to read.
type ledgerView struct {
	blobs     map[blobKey]int64
	tried     map[blobKey]int64
	manifests map[blobKey]bool
	tags      map[tagRef][]tagPut
	sessions  []*session
}

func (l *ledger) view() ledgerView {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := ledgerView{
		blobs:     maps.Clone(l.blobs),
		tried:     maps.Clone(l.tried),
		manifests: maps.Clone(l.manifests),
		tags:      map[tagRef][]tagPut{},
		sessions:  slices.Collect(maps.Keys(l.sessions)),
	}
	for k, ps := range l.tags {
		for _, p := range ps {
			v.tags[k] = append(v.tags[k], *p)
		}
	}
	return v
}
