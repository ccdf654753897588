package metadb

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Layout of the database. Four buckets:
//
//	meta     the registry's metadata, one flat key space; each value is an
//	         entry (entry.go): the latest op's stamp, origin, tombstone flag
//	         and value:
//	           m/<digest>               -> manifest record (record.go)
//	           r/<repo>/t/<tag>         -> manifest digest
//	           r/<repo>/m/<digest>      -> "" (manifest linked into repo)
//	           r/<repo>/b/<digest>      -> blob size in decimal, or "" when not
//	                                       recorded (blob linked into repo)
//	           p/<repo>/<tag>           -> digest an immutable tag was first
//	                                       bound to (not part of the repository)
//	log      <origin> 0x00 <seq, 8 bytes big endian> -> metalog.Batch
//	         (logrec.go: a manifest record's value is not repeated there)
//	vector   <origin>                   -> highest contiguous seq applied (8 bytes)
//	uploads  <upload id>                -> JSON storage.Upload (local, not replicated)
//
// The separator is NUL, which can appear in none of repository names, tags
// or digests, so every key parses back unambiguously. A repository exists
// while it has any key.
var (
	bucketMeta    = []byte("meta")
	bucketLog     = []byte("log")
	bucketVector  = []byte("vector")
	bucketUploads = []byte("uploads")
	// bucketFinished records the upload sessions that completed, by id,
	// for a retried final PUT (FinishedUpload); local like bucketUploads.
	bucketFinished = []byte("finished-uploads")
)

const sep = "\x00"

// Kinds of keys within a repository.
const (
	kindTag      = 't'
	kindManifest = 'm'
	kindBlob     = 'b'
	kindPin      = 'p' // not a repository key: p/<repo>/<tag>
)

func manifestKey(d digest.Digest) []byte { return appendManifestKey(nil, d) }

// appendManifestKey appends the key of manifest d's record to b: a read
// builds it in a buffer on its stack.
func appendManifestKey(b []byte, d digest.Digest) []byte {
	return append(append(b, 'm', sep[0]), d...)
}

// isRecordKey reports whether k is a manifest record's, m/<digest>.
func isRecordKey(k string) bool { return len(k) > 2 && k[0] == 'm' && k[1] == sep[0] }

func tagKey(repo, tag string) []byte { return repoKey(repo, kindTag, tag) }

func manifestLinkKey(repo string, d digest.Digest) []byte {
	return repoKey(repo, kindManifest, d.String())
}

func blobLinkKey(repo string, d digest.Digest) []byte { return repoKey(repo, kindBlob, d.String()) }

func pinKeyBytes(repo, tag string) []byte { return []byte("p" + sep + repo + sep + tag) }

func repoKey(repo string, kind byte, name string) []byte {
	return []byte("r" + sep + repo + sep + string(kind) + sep + name)
}

// key is a parsed key of the meta bucket.
type key struct {
	manifest digest.Digest // set for m/<digest>
	repo     string        // set for r/...
	kind     byte
	name     string
}

func parseKey(k []byte) (key, error) { return parseKeyString(string(k)) }

// parseKeyString is parseKey of a string key; the parts it returns share
// k's bytes, and it allocates nothing for a well-formed key.
func parseKeyString(k string) (key, error) {
	kind, rest, _ := strings.Cut(k, sep)
	switch kind {
	case "m":
		if rest != "" && !strings.Contains(rest, sep) {
			return key{manifest: digest.Digest(rest)}, nil
		}
	case "p":
		repo, tag, ok := strings.Cut(rest, sep)
		if ok && !strings.Contains(tag, sep) {
			return key{repo: repo, kind: kindPin, name: tag}, nil
		}
	case "r":
		repo, rest, ok1 := strings.Cut(rest, sep)
		kind, name, ok2 := strings.Cut(rest, sep)
		if ok1 && ok2 && len(kind) == 1 && strings.ContainsAny(kind, "tmb") && !strings.Contains(name, sep) {
			return key{repo: repo, kind: kind[0], name: name}, nil
		}
	}
	return key{}, fmt.Errorf("malformed metadata key %q", k)
}
