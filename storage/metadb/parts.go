package metadb

// The parts of a Store, by capability. Each is a view of the shared core:
// none holds state of its own, so the split changes no lock, transaction
// or on-disk byte. Two parts promoting a method of the same name would
// hide it from Store: parts_test.go then fails to compile.
type (
	// replicaLog is the replicated log: Apply, Vector, Since (store.go).
	replicaLog struct{ *core }
	// manifests are the catalog, tags, manifests and referrers
	// (registry.go, batch.go).
	manifests struct{ *core }
	// links are the repositories' blob links (registry.go).
	links struct{ *core }
	// pins are the tags pinned to a digest (pin.go).
	pins struct{ *core }
	// uploadRecords are this member's uploads, not replicated (uploads.go).
	uploadRecords struct{ *core }
	// usageIndex answers what repositories hold and weigh (usage.go).
	usageIndex struct{ *core }
	// snapshots trim the log and install other members' state
	// (snapshot.go, install.go).
	snapshots struct{ *core }
	// collector collects unreferenced manifest records and lists every
	// entry (collect.go).
	collector struct{ *core }
	// compacter compacts the database file online (compactonline.go)
	// and copies it whole for a backup (backup.go).
	compacter struct{ *core }
	// stamps read and move the metadata clock (entry.go).
	stamps struct{ *core }
	// recordChecks check manifest records against their digests and
	// mend bad ones (recordcheck.go).
	recordChecks struct{ *core }
)

// newStore composes a Store of parts over c.
func newStore(c *core) *Store {
	return &Store{
		core:          c,
		replicaLog:    &replicaLog{c},
		manifests:     &manifests{c},
		links:         &links{c},
		pins:          &pins{c},
		uploadRecords: &uploadRecords{c},
		usageIndex:    &usageIndex{c},
		snapshots:     &snapshots{c},
		collector:     &collector{c},
		compacter:     &compacter{c},
		stamps:        &stamps{c},
		recordChecks:  &recordChecks{c},
	}
}
