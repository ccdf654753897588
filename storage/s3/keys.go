package s3

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// keys builds the object keys of one store. The layout of the bucket, under
// the root directory (Config.RootDirectory, without leading or trailing
// slash; absent when empty):
//
//	<root>/blobs/<algorithm>/<first two hex>/<hex>   committed blobs
//	<root>/uploads/<id>/data                          a multipart upload of upload id; completed
//	                                                  at Commit, then copied to blobs/ and removed
//	<root>/uploads/<id>/tail.<gen>                    the bytes after the last part, as of the
//	                                                  gen-th State of the upload
//	<root>/uploads/<id>/started                       marks that upload id may have multipart
//	                                                  uploads: MinIO lists those only by exact key
//	<root>/check/<random>                             written and removed by Check
//	<root>/records/<name>                             a record the member keeps with the data
//	                                                  (a finished registry:2 import)
//
// Any other key under the root is not the store's (registry:2 keeps its tree
// under <root>/docker/); foreign builds those, for reading another tree.
//
// Every key of an upload lies under <root>/uploads/<id>/, so cancelling or
// purging an upload is removing that prefix and aborting its multipart
// uploads.
type keys struct {
	root string // "" or "<root>/"
}

func newKeys(rootDirectory string) keys {
	root := strings.Trim(rootDirectory, "/")
	if root != "" {
		root += "/"
	}
	return keys{root: root}
}

func (k keys) blobs() string   { return k.root + "blobs/" }
func (k keys) uploads() string { return k.root + "uploads/" }

// blob is where blob d lives. d must be valid.
func (k keys) blob(d digest.Digest) string {
	hex := d.Encoded()
	return k.blobs() + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex
}

// upload is the prefix of every key of upload id.
func (k keys) upload(id string) string { return k.uploads() + id + "/" }

// uploadData is the key of the multipart upload of upload id.
func (k keys) uploadData(id string) string { return k.upload(id) + "data" }

// uploadStarted is the key of the marker written before a multipart upload
// of upload id starts.
func (k keys) uploadStarted(id string) string { return k.upload(id) + "started" }

// uploadTail is the key of the tail recorded by the gen-th State of upload id.
func (k keys) uploadTail(id string, gen int) string {
	return k.upload(id) + "tail." + strconv.Itoa(gen)
}

func (k keys) check(random string) string { return k.root + "check/" + random }

// record is the key of the store's record name.
func (k keys) record(name string) string { return k.root + "records/" + name }

// foreign is the key of rel, a key relative to the root directory outside
// the store's layout.
func (k keys) foreign(rel string) string { return k.root + strings.TrimLeft(rel, "/") }

// parseBlob is the inverse of blob; ok is false for a key that is not a
// blob's.
func (k keys) parseBlob(key string) (d digest.Digest, ok bool) {
	rest, ok := strings.CutPrefix(key, k.blobs())
	if !ok {
		return "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], parts[1]) || len(parts[1]) != 2 {
		return "", false
	}
	d = digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
	return d, d.Validate() == nil
}

// parseUpload returns the upload id of a key under uploads/.
func (k keys) parseUpload(key string) (id string, ok bool) {
	rest, ok := strings.CutPrefix(key, k.uploads())
	if !ok {
		return "", false
	}
	id, _, ok = strings.Cut(rest, "/")
	return id, ok && id != ""
}

// checkUploadID rejects ids that would escape their prefix.
func checkUploadID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) {
		return fmt.Errorf("upload id %q: %w", id, storage.ErrUploadUnknown)
	}
	return nil
}
