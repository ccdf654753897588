package metadb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// A manifest record (the value of m/<digest>) is stored, and replicated,
// in this binary form:
//
//	recordV1 (1 byte)
//	uvarint length + media type
//	uvarint length + digest
//	uvarint size
//	uvarint length + subject
//	uvarint length + artifact type
//	uvarint length + descriptor JSON: the whole descriptor when it has
//	               fields besides the four above (annotations, URLs,
//	               platform, data), else empty
//	content:       the manifest's bytes, as pushed, to the end
//
// so the bytes are stored once, not grown by a third in base64, and the
// head reads without touching the content. Records written before were
// JSON storage.Manifest values (they start with '{'); both decode.
const recordV1 = 0x01

// recordHead is what the index reads of a manifest record: its
// descriptor and subject, not its bytes (the descriptor's size is theirs).
type recordHead struct {
	Descriptor v1.Descriptor `json:"descriptor"`
	Subject    digest.Digest `json:"subject"`
}

// encodeRecord returns the stored form of m.
func encodeRecord(m *storage.Manifest) ([]byte, error) {
	d := m.Descriptor
	var extra []byte
	if len(d.Annotations) > 0 || len(d.URLs) > 0 || d.Platform != nil || len(d.Data) > 0 {
		var err error
		if extra, err = json.Marshal(d); err != nil {
			return nil, fmt.Errorf("encode manifest %s: %w", d.Digest, err)
		}
	}
	if d.Size < 0 {
		return nil, fmt.Errorf("encode manifest %s: size %d", d.Digest, d.Size)
	}
	b := make([]byte, 0, 1+6*binary.MaxVarintLen32+len(d.MediaType)+len(d.Digest)+len(m.Subject)+len(d.ArtifactType)+len(extra)+len(m.Content))
	b = append(b, recordV1)
	b = appendString(b, d.MediaType)
	b = appendString(b, string(d.Digest))
	b = binary.AppendUvarint(b, uint64(d.Size))
	b = appendString(b, string(m.Subject))
	b = appendString(b, d.ArtifactType)
	b = appendString(b, string(extra))
	return append(b, m.Content...), nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errShortRecord = errors.New("manifest record cut short")

// reader reads the fields of a binary record in order; the first error
// sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err, r.b = errShortRecord, nil
		return 0
	}
	r.b = r.b[k:]
	return n
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = errShortRecord, nil
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// decodeBinary decodes a binary record's head; the rest of v is its
// content. A record of digest known takes that string rather than a copy
// of its own.
func decodeBinary(v []byte, known digest.Digest) (h recordHead, content []byte, err error) {
	r := reader{b: v[1:]}
	mediaType, dg := r.bytes(), r.bytes()
	size := r.uvarint()
	subject, artifactType, extra := r.bytes(), r.bytes(), r.bytes()
	if r.err != nil {
		return h, nil, r.err
	}
	if len(extra) > 0 {
		// Unmarshalled into a descriptor of its own: taking &h.Descriptor
		// would move h to the heap on every read, extra or not.
		desc := new(v1.Descriptor)
		if err := json.Unmarshal(extra, desc); err != nil {
			return h, nil, fmt.Errorf("manifest descriptor: %w", err)
		}
		h.Descriptor = *desc
	} else {
		d := known
		if string(dg) != string(known) {
			d = digest.Digest(dg)
		}
		h.Descriptor = v1.Descriptor{MediaType: mediaTypeString(mediaType), Digest: d, Size: int64(size), ArtifactType: string(artifactType)}
	}
	h.Subject = digest.Digest(subject)
	return h, r.b, nil
}

// mediaTypeString returns media type b as a string: for the common ones a
// constant, so that a read of a record (and the index's load, of each)
// does not allocate one.
func mediaTypeString(b []byte) string {
	switch string(b) { // compared without a conversion
	case oci.MediaTypeImageManifest:
		return oci.MediaTypeImageManifest
	case oci.MediaTypeImageIndex:
		return oci.MediaTypeImageIndex
	case oci.MediaTypeDockerManifest:
		return oci.MediaTypeDockerManifest
	case oci.MediaTypeDockerList:
		return oci.MediaTypeDockerList
	}
	return string(b)
}

// contentField starts the last field of a JSON record as json.Marshal
// writes storage.Manifest: its content, in base64, which holds no quote.
var contentField = []byte(`,"content":"`)

// splitRecord splits JSON record v into its head, as a JSON object, and
// its content in base64: the content is the last field and the last
// `,"content":"` in v starts it. ok is false for a record in another
// shape.
func splitRecord(v []byte) (head, content []byte, ok bool) {
	i := bytes.LastIndex(v, contentField)
	if i <= 0 || !bytes.HasSuffix(v, []byte(`"}`)) {
		return nil, nil, false
	}
	return append(v[:i:i], '}'), v[i+len(contentField) : len(v)-2], true
}

// decodeHead decodes the head of record v without its content.
func decodeHead(v []byte) (recordHead, error) {
	if len(v) > 0 && v[0] == recordV1 {
		h, _, err := decodeBinary(v, "")
		return h, err
	}
	var h recordHead
	if head, _, ok := splitRecord(v); ok {
		if err := json.Unmarshal(head, &h); err == nil {
			return h, nil
		}
	}
	err := json.Unmarshal(v, &h)
	return h, err
}

// decodeRecord decodes record v into a manifest that owns its bytes (v
// may be a page of the database, valid only in its transaction).
func decodeRecord(v []byte) (*storage.Manifest, error) { return decodeRecordOf(v, "") }

// decodeRecordOf is decodeRecord of the record of digest d, which the
// manifest shares rather than copy it.
func decodeRecordOf(v []byte, d digest.Digest) (*storage.Manifest, error) {
	if len(v) > 0 && v[0] == recordV1 {
		h, content, err := decodeBinary(v, d)
		if err != nil {
			return nil, err
		}
		// The head's strings are copies already; the content is not.
		return &storage.Manifest{Descriptor: h.Descriptor, Subject: h.Subject, Content: bytes.Clone(content)}, nil
	}
	if head, b64, ok := splitRecord(v); ok {
		var h recordHead
		content := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
		n, err := base64.StdEncoding.Decode(content, b64)
		if err == nil {
			err = json.Unmarshal(head, &h)
		}
		if err == nil {
			return &storage.Manifest{Descriptor: h.Descriptor, Subject: h.Subject, Content: content[:n]}, nil
		}
	}
	m := new(storage.Manifest)
	err := json.Unmarshal(v, m)
	return m, err
}
