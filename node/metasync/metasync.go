// Package metasync keeps every member's metadata in step with the others'.
//
// Every local write is a batch in this member's log (storage/metadb). A
// follower per live peer pushes the log to it in order, and a write
// returns once a peer acknowledged it (or every peer did, when that is
// quick): Store decorates the metadata store to wait for that. Anti-entropy
// pulls from a random peer whatever this member lacks, which brings back
// members that missed pushes and fills new ones; CatchUp pulls from every
// live peer at once, for work that must see what they had applied.
//
// The log is trimmed of what every member applied, periodically and as
// soon as it has grown by a bound, on a member on its own too, and each
// round compacts the store's file online when it is sparse (trim.go); a
// member that lacks what a peer's log no longer holds, or is more than
// SnapshotAfter batches behind, installs that peer's snapshot, chunk by
// chunk, and replays the log after it (snapshot.go).
//
// Invariants, enforced where noted and tested in metasync_test.go:
//   - Members that applied the same batches hold the same state whatever
//     the order: each key keeps the op with the greatest (stamp, origin),
//     the stamp a hybrid logical clock reading (metadb's wins).
//   - A member applies an origin's batches in sequence only: a duplicate is
//     skipped and a batch past a gap waits for the gap to be filled
//     (metadb's commit); the vector therefore says exactly what is held.
//   - Last writer wins across a snapshot: its entries carry their stamps
//     and merge like ops, and its vector is raised to only once all of
//     them are in (snapshot.go, TestLastWriterWinsAcrossSnapshot).
//   - A batch leaves the log only once every live member, and every member
//     gone for less than Horizon, has applied it; a tombstone only once
//     older than Horizon and held by all of them (trim.go,
//     TestTrimHorizonAndSnapshot).
//   - A write acknowledged to a client in a cluster is durable here and on
//     at least one other live member (Store, Replicator.wait), or fails
//     with storage.ErrUnavailable after WriteTimeout.
package metasync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/storage/metalog"
)

// Config tunes metadata replication.
type Config struct {
	// SyncInterval is how often metadata is compared with a random member
	// (anti-entropy) and an idle follower retries its peer. Default 2s.
	SyncInterval time.Duration `yaml:"syncinterval"`
	// WriteTimeout bounds how long a write waits for other members to
	// acknowledge it. Default 10s.
	WriteTimeout time.Duration `yaml:"writetimeout"`
	// AckGrace is how long a write one peer acknowledged waits for the
	// others, so a read on any member soon after sees it. Default 1s.
	AckGrace time.Duration `yaml:"-"`
	// Horizon is how long a member may be gone and still hold back the
	// trimming of the log (it then replays what it missed); one gone
	// longer comes back through a snapshot. Tombstones are kept at least
	// this long. Default 24h.
	Horizon time.Duration `yaml:"horizon"`
	// TrimInterval is how often the log is trimmed of what every member
	// applied. Default 30 SyncIntervals (1m).
	TrimInterval time.Duration `yaml:"-"`
	// TrimAfter is how many batches the log may gain before a trim round
	// runs at once, whatever TrimInterval says. Default 10000; negative:
	// none.
	TrimAfter int `yaml:"-"`
	// TrimAfterBytes is how many bytes of ops the log may gain before a
	// trim round runs at once (manifests are in the log with their
	// bytes). Default 64 MiB; negative: none.
	TrimAfterBytes int64 `yaml:"-"`
	// SnapshotAfter is how many batches behind a member must be to
	// install a snapshot rather than replay the log. Default 1024;
	// negative: only when the log was trimmed past it.
	SnapshotAfter int `yaml:"-"`
	// SnapshotChunk is how many entries one snapshot chunk asks for; a
	// chunk also stops at about 8 MiB, which a chunk of manifests reaches
	// first. Default 16384: tags and links (~130 bytes an entry) come in
	// chunks of ~2 MiB, a round trip per 16,384 of them.
	SnapshotChunk int `yaml:"-"`
}

func (c *Config) applyDefaults() {
	if c.SyncInterval <= 0 {
		c.SyncInterval = 2 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.AckGrace <= 0 {
		c.AckGrace = time.Second
	}
	if c.Horizon <= 0 {
		c.Horizon = 24 * time.Hour
	}
	if c.TrimInterval <= 0 {
		c.TrimInterval = 30 * c.SyncInterval
	}
	if c.TrimAfter == 0 {
		c.TrimAfter = 10000
	}
	if c.TrimAfterBytes == 0 {
		c.TrimAfterBytes = 64 << 20
	}
	if c.SnapshotAfter == 0 {
		c.SnapshotAfter = 1024
	}
	if c.SnapshotChunk <= 0 {
		c.SnapshotChunk = 16384
	}
}

// Log is the local metadata log: storage/metadb's Store. All methods may be
// called concurrently.
type Log interface {
	// Vector returns what this member has applied.
	Vector() metalog.Vector
	// Since returns up to limit batches of origin with Seq > seq, in order.
	Since(origin string, seq uint64, limit int) ([]metalog.Batch, error)
	// Apply applies other members' batches durably, skipping those
	// applied already and those past a gap.
	Apply(ctx context.Context, batches []metalog.Batch) error
	// Snapshots trim the log and install what other members send.
	Snapshots
}

// Transport reaches the other members' logs: peer.Cluster, or a Network
// in tests. All methods may be called concurrently.
type Transport interface {
	// Vector returns what member has applied.
	Vector(ctx context.Context, member string) (metalog.Vector, error)
	// Since returns up to limit batches of origin's log after seq from
	// member, in order; fewer when the response would be large.
	Since(ctx context.Context, member, origin string, seq uint64, limit int) ([]metalog.Batch, error)
	// Apply has member apply batches (Log.Apply there).
	Apply(ctx context.Context, member string, batches []metalog.Batch) error
	// Snapshot returns a chunk of member's snapshot: up to limit entries
	// after the key after (Log.SnapshotChunk there).
	Snapshot(ctx context.Context, member, after string, limit int) (metalog.Chunk, error)
}

// Deps are what a Replicator works on.
type Deps struct {
	// Self names this member: the origin of its writes in the log.
	Self string
	// Log is the local metadata log.
	Log Log
	// Logger receives debug logs of failed pushes and pulls. Nil
	// discards them.
	Logger *slog.Logger
	// Joining says the member joins others: Run first catches up with
	// them, and until it has, the member is not ready and its own writes
	// wait (waitCaughtUp).
	Joining bool
}

// Replicator runs the followers, anti-entropy and catch-up of one member.
// Until Connect, it is a member on its own: writes return at once and
// there is nobody to pull from. It is composed of parts split by
// capability (parts.go) over the one replicaCore they share; promoted,
// their methods are the Replicator's.
type Replicator struct {
	*replicaCore
	*pusher
	*puller
	*snapshotter
	*trimmer
}

// replicaCore is what every part shares: the member, its log and the
// peers it follows, with the transport to reach them.
type replicaCore struct {
	cfg  Config
	self string
	log  Log
	slog *slog.Logger

	mu        sync.Mutex
	transport Transport
	followers map[string]*follower

	// catching says what catching up is doing, while the member does
	// (puller.CatchingUp).
	catching note
}

// A note is a line saying what a long task is doing now, for operators.
type note struct{ line atomic.Pointer[string] }

func (n *note) set(format string, args ...any) {
	line := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "; ") // errors.Join's
	n.line.Store(&line)
}

func (n *note) get() string {
	if line := n.line.Load(); line != nil {
		return *line
	}
	return ""
}

// New returns a Replicator over deps.Log.
func New(cfg Config, deps Deps) *Replicator {
	cfg.applyDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &replicaCore{cfg: cfg, self: deps.Self, log: deps.Log, slog: deps.Logger, followers: map[string]*follower{}}
	trims := &trimmer{replicaCore: c, trim: trimState{known: map[string]seen{}, kick: make(chan struct{}, 1)}}
	snaps := &snapshotter{replicaCore: c}
	return &Replicator{
		replicaCore: c,
		pusher:      &pusher{replicaCore: c, changed: make(chan struct{})},
		puller:      &puller{replicaCore: c, trims: trims, snaps: snaps, joining: deps.Joining, up: make(chan struct{})},
		snapshotter: snaps,
		trimmer:     trims,
	}
}

// Connect gives the Replicator its transport to the other members. Call it
// once, before Follow, Run and CatchUp.
func (r *replicaCore) Connect(t Transport) {
	r.mu.Lock()
	r.transport = t
	r.mu.Unlock()
}

func (r *replicaCore) conn() Transport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.transport
}

// Follow is the membership hook: it starts a follower for each peer in
// peers (the live members other than this one) that has none, and stops
// those of members no longer listed. Followers run until ctx is done.
// Anti-entropy and CatchUp pull from the members last listed.
func (r *pusher) Follow(ctx context.Context, peers []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := map[string]bool{}
	for _, name := range peers {
		keep[name] = true
		if r.followers[name] == nil {
			fctx, cancel := context.WithCancel(ctx)
			f := &follower{name: name, kick: make(chan struct{}, 1), cancel: cancel}
			r.followers[name] = f
			go r.push(fctx, f)
		}
	}
	for name, f := range r.followers {
		if !keep[name] {
			f.cancel()
			delete(r.followers, name)
		}
	}
}

// peers returns the members followed now.
func (r *replicaCore) peers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.followers))
	for name := range r.followers {
		out = append(out, name)
	}
	return out
}

// CaughtUp reports whether this member has applied what every peer it
// reached had applied when it joined: until then it is not ready (a
// metadata read could miss what exists). A member with no peer to reach
// is caught up.
func (r *puller) CaughtUp() bool { return r.caughtUp.Load() }

func (r *puller) markCaughtUp() {
	r.caughtUp.Store(true)
	r.upOnce.Do(func() { close(r.up) })
}

// waitCaughtUp holds a write of this member's own, once Run began, until
// a member that joins others has caught up with them: until then it may
// hold less of its own log than they do (its metadata was lost, or
// restored from a backup), and the write would reuse a sequence number
// they hold for another batch, which they would skip as a duplicate.
// Before Run nothing waits: a registry:2 import before serving writes
// while the member is not in the cluster yet (node starts Run before its
// other background work).
func (r *puller) waitCaughtUp(ctx context.Context) error {
	if !r.joining || !r.running.Load() {
		return nil
	}
	select {
	case <-r.up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to catch up with the cluster's metadata before writing: %w", ctx.Err())
	}
}

// CatchingUp says, until CaughtUp, what catching up is doing: whose log
// it pulls or whose snapshot it installs, and how far it got. It is ""
// once caught up, or before it started.
func (r *puller) CatchingUp() string {
	if r.caughtUp.Load() {
		return ""
	}
	return r.catching.get()
}

// Run is anti-entropy: every SyncInterval, until ctx is done, it pulls
// what a random peer has applied and this member has not; and it runs the
// trim rounds (trim.go), also on a member on its own. First, if the member
// joins others (Deps.Joining), it catches up with every peer, retrying
// until all of them answered.
func (r *Replicator) Run(ctx context.Context) {
	r.running.Store(true)
	if !r.joining {
		r.markCaughtUp()
	}
	r.catching.set("waiting for a member to pull from")
	for !r.caughtUp.Load() {
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if len(r.peers()) == 0 {
			continue // not joined yet
		}
		if err := r.CatchUp(ctx); err != nil {
			r.slog.Debug("catching up", "err", err)
			r.catching.set("trying again after: %v", err)
			continue
		}
		r.markCaughtUp()
		r.slog.Info("caught up with the cluster's metadata", "peers", len(r.peers()))
	}
	t := time.NewTicker(r.cfg.SyncInterval)
	defer t.Stop()
	trim := time.NewTicker(r.cfg.TrimInterval)
	defer trim.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-trim.C:
			r.trimRound(ctx)
		case <-r.trim.kick:
			r.trimRound(ctx)
		case <-t.C:
			r.logGrew(0) // batches other members pushed count too
			r.antiEntropy(ctx)
		}
	}
}

// antiEntropy pulls from a random peer what it has and this member lacks.
func (r *puller) antiEntropy(ctx context.Context) {
	peers := r.peers()
	if len(peers) == 0 {
		return
	}
	p := peers[rand.IntN(len(peers))]
	if err := r.pullFrom(ctx, p); err != nil && ctx.Err() == nil {
		r.slog.Debug("anti-entropy", "member", p, "err", err)
	}
}

// CatchUp pulls from every live peer what it had applied when asked and
// this member lacks. Its error names each peer it could not pull from.
func (r *puller) CatchUp(ctx context.Context) error {
	var errs []error
	for _, p := range r.peers() {
		if err := r.pullFrom(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// pullLimit is how many batches one Since call asks for.
const pullLimit = 64

// pullFrom applies every batch member p has and this member lacks: it
// installs p's snapshot first when this member is more than SnapshotAfter
// batches behind or p's log no longer holds what it lacks (trimmed). It
// stops at a gap p cannot fill, leaving it to the next pull.
func (r *puller) pullFrom(ctx context.Context, p string) error {
	t := r.conn()
	if t == nil {
		return nil
	}
	theirs, err := t.Vector(ctx, p)
	if err != nil {
		return err
	}
	n := behind(theirs, r.log.Vector())
	if !r.caughtUp.Load() {
		r.catching.set("pulling %s's log: %d batches behind", p, n)
	}
	if r.cfg.SnapshotAfter < 0 || n <= uint64(r.cfg.SnapshotAfter) {
		err = r.pullLog(ctx, t, p, theirs)
		if !errors.Is(err, errTrimmed) {
			return err
		}
	}
	if err := r.snaps.installSnapshot(ctx, t, p); err != nil {
		return err
	}
	return r.pullLog(ctx, t, p, theirs)
}

// errTrimmed says a member's log no longer holds batches this member
// lacks: it takes a snapshot instead.
var errTrimmed = errors.New("the member's log was trimmed past what this member applied")

// behind returns how many batches of theirs mine lacks.
func behind(theirs, mine metalog.Vector) uint64 {
	var n uint64
	for origin, seq := range theirs {
		if seq > mine[origin] {
			n += seq - mine[origin]
		}
	}
	return n
}

// pullLog applies the batches of member p's log up to theirs that this
// member lacks. It fails with errTrimmed when p's log starts past them.
func (r *puller) pullLog(ctx context.Context, t Transport, p string, theirs metalog.Vector) error {
	mine := r.log.Vector()
	for origin, seq := range theirs {
		for mine[origin] < seq {
			batches, err := t.Since(ctx, p, origin, mine[origin], pullLimit)
			if err != nil {
				return err
			}
			if len(batches) == 0 || batches[0].Seq > mine[origin]+1 {
				return fmt.Errorf("%s's log of %s after %d: %w", p, origin, mine[origin], errTrimmed)
			}
			if err := r.log.Apply(ctx, batches); err != nil {
				return err
			}
			r.trims.logGrew(opBytes(batches))
			next := r.log.Vector()[origin]
			if next == mine[origin] {
				break // a gap p cannot fill
			}
			mine[origin] = next
		}
	}
	return nil
}
