// Package peer is the node-to-node transport of an atoll cluster. It knows
// nothing of the HTTP API or of the storage layout; it moves the things node
// hands it.
//
// A Cluster is one member. It does three jobs:
//
//   - Membership: gossip over hashicorp/memberlist. Members find each other
//     from a join list (addresses or DNS names that resolve to many
//     addresses), retried in the background until one join succeeds. Each
//     member advertises, in its memberlist node metadata, the address of its
//     registry HTTP API, the address of its gRPC services and how many blobs
//     and bytes it holds. Members reports every member seen, including
//     those that died or left (a leaving member tells the others directly,
//     so they report it left, not dead), and Events tells node when the
//     list changed.
//   - Serving: the gRPC services of peer.proto (Metadata: Apply, GetVector,
//     Since; Blobs: Has, Put, and Append, Finish for the replicas of other
//     members' uploads, replicas.go) over the handlers in Deps, and of
//     snapshot.proto (Snapshots: Chunk, when Deps.Metadata is a
//     SnapshotSource).
//   - Calling: the same services on another member, addressed by member name
//     (Cluster.Client: Apply, Vector, Since, Snapshot, Has, PutBlob,
//     AppendReplica, FinishReplica), over one pooled connection per
//     member. Blob bytes stream in 1 MiB chunks; nothing buffers a whole
//     blob.
//
// Blobs go to a member over gRPC (placement's pushes) but are read from one
// over HTTP (GET /_atoll/v1/blobs/<digest>, node/route): a read is a client's
// request passed on whole, with its Range and conditional headers, answered
// with the holder's own headers and, on plain HTTP/1, copied socket to
// socket by splice(2), none of which a gRPC stream of chunks can do.
//
// Errors cross the wire as gRPC status codes with the storage domain error
// named in the details (errors.go holds the one table), so a caller tests a
// remote error with errors.Is(err, storage.ErrBlobUnknown) just as a local one.
//
// With Config.Secret set, gossip is encrypted with a key derived from it and
// every gRPC call carries a token derived from it (auth.go); a member with
// another secret can neither join the gossip nor call the services.
package peer

//go:generate protoc --proto_path=. --go_out=peerpb --go_opt=paths=source_relative --go-grpc_out=peerpb --go-grpc_opt=paths=source_relative peer.proto
