package metasync

import "context"

// A Replicator is composed of parts (parts.go) and must keep every method
// node calls on it, and Store its own writes' waits. Two parts promoting
// a method of the same name at the same depth would hide it: this list
// then fails to compile.
var (
	_ replicatorAPI = (*Replicator)(nil)
	_ storeHooks    = (*Replicator)(nil)
)

// What node calls (node.go, cluster.go, gchttp.go, metrics.go).
type replicatorAPI interface {
	Connect(t Transport)
	Follow(ctx context.Context, peers []string)
	Run(ctx context.Context)
	CaughtUp() bool
	CatchingUp() string
	CatchUp(ctx context.Context) error
	Lag() uint64
	Trim(ctx context.Context) error
}

// What Store calls (store.go).
type storeHooks interface {
	logGrew(bytes int64)
	wait(ctx context.Context, seq uint64) error
}
