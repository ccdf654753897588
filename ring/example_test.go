package ring_test

import (
	"fmt"

	"github.com/atollhq/atoll/ring"
	"github.com/opencontainers/go-digest"
)

func ExampleRing_Owners() {
	// Every node builds the same ring from the same members, in any order.
	r := ring.New(ring.Config{}, []string{"node-c", "node-a", "node-b"})
	d := digest.Digest("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")

	fmt.Println(r.Owners(d, 2))                   // primary first
	fmt.Println(r.Owners(d, 5))                   // at most every member
	fmt.Println(r.With("node-d").Owners(d, 2))    // most blobs keep their owners
	fmt.Println(r.Without("node-b").Owners(d, 2)) // the lost copy is re-homed
	fmt.Println(ring.New(ring.Config{}, nil).Owners(d, 2))
	// Output:
	// [node-b node-c]
	// [node-b node-c node-a]
	// [node-b node-c]
	// [node-c node-a]
	// []
}
