package main

import "github.com/atollhq/atoll/test/bench/benchkit"

// shape is how much a store holds: manifests spread evenly over repos,
// tags evenly over manifests.
type shape struct{ repos, manifests, tags int }

// tagsOf returns the tags of the i-th manifest of a store of shape s.
func (s shape) tagsOf(i int) []string { return benchkit.Tags(i, s.manifests, s.tags) }
