// Package ring places blobs on cluster members: Owners(digest, n) names the n
// members that hold a blob, the first of them its primary.
//
// A digest is hashed (xxhash of its string form) into one of Config.Partitions
// partitions, as github.com/buraksezer/consistent does with a key. Each
// partition is owned by one member, assigned by that library's consistent
// hashing with bounded loads. The owners of a digest in partition p are the
// distinct owners of partitions p, p+1, p+2, ... (mod Partitions), in that
// order.
//
// Placement keeps three invariants:
//
//   - Deterministic: a Ring is a pure function of its Config and its set of
//     member names. Every node that builds a Ring from the same Config and
//     the same members, in any order, gets the same owners for every digest.
//   - Bounded load: no member owns more than ceil(Load*floor(Partitions/N))
//     of the partitions of N members, so no member holds much more than Load
//     times the mean number of blob copies. Measured for 3 to 16 members and
//     two owners per blob: at most 1.13 times.
//   - Minimal movement: adding a member to N changes close to the
//     unavoidable 1/(N+1) of the (blob, owner) pairs, nearly all of them
//     copies the new member gains (measured: at most 1.14/(N+1)). Removing a
//     member changes only the owner sets that contained it, as long as no
//     member is at the load bound (with 1000 points per member on the circle,
//     none is), and makes about one new copy per copy lost (measured: at
//     most 1.05).
//
// The package is pure: no I/O, no goroutines, no global state. A Ring is
// immutable and safe for concurrent use; With and Without build new rings.
// Building one costs O(N² · 1000 · log N) in the library (tens of ms for 16
// members), so build once per membership change, not per request.
package ring

import (
	"math"
	"slices"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
	"github.com/opencontainers/go-digest"
)

// Ring is an immutable placement of blobs on a set of members. A nil *Ring is
// an empty ring.
type Ring struct {
	cfg     Config
	members []string // sorted, distinct, non-empty names
	owner   []int32  // owner[p]: index in members of partition p's owner, or -1; nil if no members
}

// New returns the ring of members under cfg. Members are node names; their
// order and duplicates do not matter, and empty names are ignored. With no
// members the ring is empty and Owners returns nil.
func New(cfg Config, members []string) *Ring {
	cfg.applyDefaults()
	names := normalize(members)
	r := &Ring{cfg: cfg, members: names}
	if len(names) == 0 {
		return r // the library cannot distribute partitions over no members
	}

	// The library panics when the partitions do not fit under the load
	// bound, so pick a partition count and load that always fit.
	partitions := max(cfg.Partitions, len(names))
	ms := make([]consistent.Member, len(names))
	for i, name := range names {
		ms[i] = newMember(name, i)
	}
	// Members go in sorted, so that even a collision of two members' points
	// on the circle (the library keeps the one added last) resolves the same
	// way on every node.
	c := consistent.New(ms, consistent.Config{
		Hasher:            hasher{},
		PartitionCount:    partitions,
		ReplicationFactor: virtualNodes,
		Load:              fitLoad(cfg.Load, partitions, len(names)),
	})

	r.owner = make([]int32, partitions)
	for p := range r.owner {
		r.owner[p] = -1
		if m, ok := c.GetPartitionOwner(p).(member); ok {
			r.owner[p] = m.index
		}
	}
	return r
}

// Owners returns the n distinct members that own the blob with digest d,
// primary first. It returns all members if the ring has fewer than n (or, in
// a ring with barely more partitions than members, every member that owns a
// partition), and nil if the ring is empty or n <= 0. Any string is placed;
// d is not validated.
func (r *Ring) Owners(d digest.Digest, n int) []string {
	if r == nil || len(r.owner) == 0 || n <= 0 {
		return nil
	}
	n = min(n, len(r.members))
	owners := make([]string, 0, n)
	for i, p := 0, r.partition(d); i < len(r.owner) && len(owners) < n; i++ {
		o := r.owner[(p+i)%len(r.owner)]
		if o >= 0 && !slices.Contains(owners, r.members[o]) {
			owners = append(owners, r.members[o])
		}
	}
	return owners
}

// partition returns the partition of d, computed as the library's
// FindPartitionID does: hash(key) mod partition count.
func (r *Ring) partition(d digest.Digest) int {
	return int(xxhash.Sum64String(string(d)) % uint64(len(r.owner)))
}

// Members returns the members of the ring, sorted.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}

// Len returns the number of members.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.members)
}

// Has reports whether name is a member of the ring.
func (r *Ring) Has(name string) bool {
	if r == nil {
		return false
	}
	_, ok := slices.BinarySearch(r.members, name)
	return ok
}

// With returns the ring with the same Config and name added. It returns r
// itself if name is empty or already a member.
func (r *Ring) With(name string) *Ring {
	if name == "" || r.Has(name) {
		return r.orEmpty()
	}
	return New(r.config(), append(r.Members(), name))
}

// Without returns the ring with the same Config and name removed. It returns
// r itself if name is not a member.
func (r *Ring) Without(name string) *Ring {
	if !r.Has(name) {
		return r.orEmpty()
	}
	members := slices.DeleteFunc(r.Members(), func(m string) bool { return m == name })
	return New(r.config(), members)
}

func (r *Ring) config() Config {
	if r == nil {
		return Config{}
	}
	return r.cfg
}

// orEmpty returns r, or an empty ring if r is nil.
func (r *Ring) orEmpty() *Ring {
	if r == nil {
		return New(Config{}, nil)
	}
	return r
}

// normalize returns the distinct non-empty names, sorted.
func normalize(members []string) []string {
	names := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == "" })
	slices.Sort(names)
	return slices.Compact(names)
}

// fitLoad returns load, raised if needed so that members can hold all
// partitions under the library's bound of ceil(load*floor(partitions/members))
// each. It requires partitions >= members > 0.
func fitLoad(load float64, partitions, members int) float64 {
	per := partitions / members
	need := (partitions + members - 1) / members
	if math.Ceil(float64(per)*load) >= float64(need) {
		return load
	}
	return float64(need) / float64(per)
}

// member is a ring member as the library sees it.
type member struct {
	key   string // the name and a separator
	index int32  // position of the name in Ring.members
}

// newMember returns the member named name, at index in Ring.members.
//
// The library puts a member's points at hash(String() + decimal i). With
// String() = name, "node-1" and "node-11" would share points ("node-1" + "10"
// = "node-11" + "0") and "node-1" would lose most of its share to node-10 ...
// node-19. Ending the key with a non-digit makes every point key decode to
// exactly one (name, i).
func newMember(name string, index int) member {
	return member{key: name + "#", index: int32(index)}
}

func (m member) String() string { return m.key }

// hasher is xxhash for the library.
type hasher struct{}

func (hasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }
