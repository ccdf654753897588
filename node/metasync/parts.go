package metasync

import (
	"sync"
	"sync/atomic"
)

// The parts of a Replicator, by capability. Each embeds the shared
// replicaCore and holds only the state it alone uses, so the split changes
// no lock or goroutine. Two parts promoting a method of the same name
// would hide it from Replicator: parts_test.go then fails to compile.
type (
	// pusher runs one follower per peer, pushing this member's batches,
	// and waits for a peer to hold a write (follower.go; Follow).
	pusher struct {
		*replicaCore
		progress sync.Mutex
		changed  chan struct{} // closed and replaced whenever a follower advances
	}
	// puller pulls what peers have and this member lacks: anti-entropy
	// and catch-up (metasync.go), through a snapshot when far behind.
	puller struct {
		*replicaCore
		trims    *trimmer     // counts what a pull adds to the log
		snaps    *snapshotter // installs a peer's snapshot
		caughtUp atomic.Bool  // it has applied what its peers had when it joined
		// joining is Deps.Joining: once Run began (running) and until up
		// is closed (caught up), the member's own writes wait.
		joining bool
		running atomic.Bool
		up      chan struct{}
		upOnce  sync.Once
	}
	// snapshotter installs a peer's snapshot (snapshot.go).
	snapshotter struct{ *replicaCore }
	// trimmer trims the log and compacts the store (trim.go).
	trimmer struct {
		*replicaCore
		trim trimState
	}
)
