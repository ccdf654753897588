package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
)

// Hostile input: requests an attacker (or a broken client) sends to break
// out of a repository, corrupt an upload or exhaust the server. Each case
// gets the spec's status and error code, and leaves the registry exactly as
// it was: the same repositories, tags, manifests, blobs, blob links, upload
// sessions, and the same files on disk, inside the data directory and next
// to it (a path traversal would write there).

// hostileRegistry is the API over real stores in dir/data.
type hostileRegistry struct {
	base string
	dir  string // parent of the data directory
	meta *metadb.Store
	fs   *filesystem.Store
}

func newHostileRegistry(t *testing.T, cfg api.Config) *hostileRegistry {
	t.Helper()
	dir := t.TempDir()
	blobs, meta := openStores(t, filepath.Join(dir, "data"))
	srv := serve(t, cfg, api.Deps{Blobs: blobs, Meta: meta})
	return &hostileRegistry{base: srv.URL, dir: dir, meta: meta, fs: blobs}
}

// hostileState is everything a request could change.
type hostileState struct {
	Repos     []string
	Tags      map[string][]string // repository -> tags
	Manifests []string            // repository@digest
	Blobs     []string            // digest size
	Links     []string            // repository -> digest, for every stored blob
	Uploads   []string            // id repository size
	// Files are the files under dir but the metadata database, with
	// their sizes, except for upload files: a chunk that fails half-way
	// may leave bytes past the session's recorded size, which the
	// session's next write truncates (filesystem.Store.Writer), so only
	// their names count; Uploads holds their recorded sizes.
	Files []string
}

func (h *hostileRegistry) state(t *testing.T) hostileState {
	t.Helper()
	s := hostileState{Repos: h.meta.Repositories("", 0), Tags: map[string][]string{}}
	for _, r := range s.Repos {
		tags, err := h.meta.Tags(r, "", 0)
		if err != nil {
			t.Fatalf("tags of %s: %v", r, err)
		}
		s.Tags[r] = tags
	}
	h.meta.EachManifest(func(repo string, m *storage.Manifest) bool {
		s.Manifests = append(s.Manifests, repo+"@"+m.Descriptor.Digest.String())
		return true
	})
	err := h.fs.Walk(t.Context(), func(d digest.Digest, size int64) error {
		s.Blobs = append(s.Blobs, fmt.Sprintf("%s %d", d, size))
		for _, r := range h.meta.BlobRepos(d) {
			s.Links = append(s.Links, r+" -> "+d.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ups, err := h.meta.ListUploads()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		s.Uploads = append(s.Uploads, fmt.Sprintf("%s %s %d", u.ID, u.Repo, u.Size))
	}
	err = filepath.WalkDir(h.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() == "metadata.db" {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.dir, path)
		if filepath.Base(filepath.Dir(path)) == "uploads" {
			s.Files = append(s.Files, rel)
			return nil
		}
		s.Files = append(s.Files, fmt.Sprintf("%s %d", rel, fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range [][]string{s.Manifests, s.Blobs, s.Links, s.Uploads, s.Files} {
		sort.Strings(l)
	}
	return s
}

// without returns s less the upload session id and its bytes.
func (s hostileState) without(id string) hostileState {
	keep := func(l []string) []string {
		l = slices.DeleteFunc(slices.Clone(l), func(e string) bool { return strings.Contains(e, id) })
		if len(l) == 0 {
			return nil
		}
		return l
	}
	s.Uploads, s.Files = keep(s.Uploads), keep(s.Files)
	return s
}

// hostileRequest sends one request. With chunked set, the body goes with
// Transfer-Encoding: chunked (no Content-Length).
func hostileRequest(t *testing.T, method, u string, body []byte, chunked bool, header []string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), -1
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// hostileShortBody sends a PATCH whose body ends before its
// Content-Length, then half-closes the connection and reads the answer.
func hostileShortBody(t *testing.T, base, path string, declared int, body []byte, contentRange string) (*http.Response, []byte) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Range: %s\r\nContent-Length: %d\r\n\r\n%s",
		path, u.Host, contentRange, declared, body)
	_ = conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("PATCH %s with a short body: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestHostileInput(t *testing.T) {
	h := newHostileRegistry(t, api.Config{MaxManifestSize: 64 << 10})
	base := h.base
	manifest, md := pushImage(t, base, "lib/app", "v1")
	otherManifest, otherMD := pushImage(t, base, "other", "v1")
	otherBlob := pushBlob(t, base, "other", []byte("only in other"))
	layer := pushBlob(t, base, "lib/app", []byte("0123456789"))
	missing := digest.FromString("never pushed")
	// upload opens a session in repo holding "abc" and returns its
	// location; cancelled cancels it first.
	upload := func(repo string, cancelled bool) string {
		return openUpload(t, base, repo, []byte("abc"), cancelled)
	}
	at := func(s string) func() string { return func() string { return s } }
	inUpload := func(repo string, cancelled bool, query string) func() string {
		return func() string { return upload(repo, cancelled) + query }
	}
	// fromOtherRepo moves an upload of lib/app to the path of repository other.
	fromOtherRepo := func(query string) func() string {
		return func() string {
			return strings.Replace(upload("lib/app", false), "/lib/app/", "/other/", 1) + query
		}
	}
	const mt = "application/vnd.oci.image.manifest.v1+json"
	descriptor := func(mediaType, d string, size int64) []byte {
		return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[]}`,
			mt, mediaType, d, size)
	}
	index := func(d digest.Digest) []byte {
		return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
			mt, d, len(manifest))
	}
	abc := digest.FromString("abc")
	upper := "sha256:" + strings.ToUpper(layer.Encoded())

	for _, tc := range []struct {
		name    string
		method  string
		path    func() string // run before the state is taken
		body    []byte
		chunked bool
		header  []string
		status  int
		code    string // "" when the answer has no body (HEAD)
		gone    bool   // the case's upload session is discarded
	}{
		// Names and references: traversal, odd encodings, length limits.
		{name: "dot-dot in name", method: "GET", path: at("/v2/lib/../../../etc/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "dot-dot name on push", method: "POST", path: at("/v2/../../x/blobs/uploads/"), status: 400, code: "NAME_INVALID"},
		{name: "encoded dot-dot in name", method: "GET", path: at("/v2/lib/%2e%2e/%2E%2E/other/manifests/v1"), status: 400, code: "NAME_INVALID"},
		{name: "encoded slash in name on push", method: "PUT", path: at("/v2/lib%2Fapp/manifests/v2"), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "NAME_INVALID"},
		{name: "NUL in name", method: "POST", path: at("/v2/lib%00app/blobs/uploads/"), status: 400, code: "NAME_INVALID"},
		{name: "NUL in tag", method: "PUT", path: at("/v2/lib/app/manifests/v1%00evil"), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "NUL in digest", method: "GET", path: at("/v2/lib/app/blobs/sha256:%00" + layer.Encoded()[1:]), status: 400, code: "DIGEST_INVALID"},
		{name: "unicode name", method: "GET", path: at("/v2/caf%C3%A9/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "fullwidth slash in name", method: "GET", path: at("/v2/lib%EF%BC%8Fapp/manifests/v1"), status: 400, code: "NAME_INVALID"},
		{name: "unicode tag", method: "PUT", path: at("/v2/lib/app/manifests/t%C3%A4g"), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "uppercase name on push", method: "POST", path: at("/v2/Lib/App/blobs/uploads/?digest=" + abc.String()), body: []byte("abc"), status: 400, code: "NAME_INVALID"},
		{name: "uppercase digest", method: "GET", path: at("/v2/lib/app/blobs/" + upper), status: 400, code: "DIGEST_INVALID"},
		{name: "uppercase algorithm", method: "GET", path: at("/v2/lib/app/blobs/SHA256:" + layer.Encoded()), status: 400, code: "DIGEST_INVALID"},
		{name: "trailing slash in name", method: "PUT", path: at("/v2/lib/app//manifests/v2"), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "NAME_INVALID"},
		{name: "double slash in name", method: "GET", path: at("/v2/lib//app/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "leading slash in name", method: "GET", path: at("/v2//lib/app/manifests/v1"), status: 400, code: "NAME_INVALID"},
		{name: "trailing slash after route", method: "GET", path: at("/v2/lib/app/tags/list/"), status: 404, code: "NAME_UNKNOWN"},
		{name: "name of 256 characters", method: "POST", path: at("/v2/" + strings.Repeat("a", 256) + "/blobs/uploads/"), status: 400, code: "NAME_INVALID"},
		{name: "name of 257 characters in components", method: "GET", path: at("/v2/" + strings.Repeat("ab/", 85) + "ab/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "tag of 129 characters", method: "PUT", path: at("/v2/lib/app/manifests/" + strings.Repeat("t", 129)), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "tag starting with a dot", method: "PUT", path: at("/v2/lib/app/manifests/.hidden"), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "reference with encoded path", method: "PUT", path: at("/v2/lib/app/manifests/..%2F..%2Fv1"), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},

		// Digest mismatches never store anything.
		{name: "monolithic digest mismatch", method: "POST", path: at("/v2/lib/app/blobs/uploads/?digest=" + missing.String()), body: []byte("abc"), status: 400, code: "DIGEST_INVALID"},
		{name: "monolithic sha512 mismatch", method: "POST", path: at("/v2/lib/app/blobs/uploads/?digest=" + digest.SHA512.FromString("x").String()), body: []byte("abc"), status: 400, code: "DIGEST_INVALID"},
		{name: "monolithic short digest", method: "POST", path: at("/v2/lib/app/blobs/uploads/?digest=sha256:abc"), body: []byte("abc"), status: 400, code: "DIGEST_INVALID"},
		{name: "chunked put digest mismatch", method: "PUT", path: inUpload("lib/app", false, "?digest="+missing.String()), body: []byte("def"),
			header: []string{"Content-Range", "3-5"}, status: 400, code: "DIGEST_INVALID", gone: true},
		{name: "put without a chunk digest mismatch", method: "PUT", path: inUpload("lib/app", false, "?digest="+missing.String()), status: 400, code: "DIGEST_INVALID", gone: true},
		{name: "manifest put by another digest", method: "PUT", path: at("/v2/lib/app/manifests/" + otherMD.String()), body: manifest, header: []string{"Content-Type", mt}, status: 400, code: "DIGEST_INVALID"},
		{name: "manifest put by sha512 of other content", method: "PUT", path: at("/v2/lib/app/manifests/" + digest.SHA512.FromBytes(otherManifest).String()), body: manifest,
			header: []string{"Content-Type", mt}, status: 400, code: "DIGEST_INVALID"},

		// Content-Range abuse on a session holding 3 bytes.
		{name: "negative range start", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "-1-1"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "negative range end", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "3--5"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "overlapping range", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "0-2"}, status: 416, code: "BLOB_UPLOAD_INVALID"},
		{name: "partly overlapping range", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "2-4"}, status: 416, code: "BLOB_UPLOAD_INVALID"},
		{name: "range start beyond its end", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "5-3"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "range beyond the upload", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "10-12"}, status: 416, code: "BLOB_UPLOAD_INVALID"},
		{name: "range end at max int64", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "3-9223372036854775807"}, status: 400, code: "SIZE_INVALID"},
		{name: "range end at max int64 chunked", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), chunked: true,
			header: []string{"Content-Range", "3-9223372036854775807"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "range of 2^63 bytes chunked", method: "PATCH", path: func() string { return openUpload(t, base, "lib/app", nil, false) }, body: []byte("abc"), chunked: true,
			header: []string{"Content-Range", "0-9223372036854775807"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "range past int64", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "3-99999999999999999999"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "range start at max int64", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"),
			header: []string{"Content-Range", "9223372036854775807-9223372036854775807"}, status: 416, code: "BLOB_UPLOAD_INVALID"},
		{name: "several ranges", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("def"), header: []string{"Content-Range", "3-4,5-5"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "Content-Length over the range", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("defgh"), header: []string{"Content-Range", "3-5"}, status: 400, code: "SIZE_INVALID"},
		{name: "Content-Length under the range", method: "PATCH", path: inUpload("lib/app", false, ""), body: []byte("d"), header: []string{"Content-Range", "3-5"}, status: 400, code: "SIZE_INVALID"},
		{name: "range on a final put overlapping", method: "PUT", path: inUpload("lib/app", false, "?digest="+abc.String()), body: []byte("abc"), header: []string{"Content-Range", "0-2"}, status: 416, code: "BLOB_UPLOAD_INVALID"},
		{name: "range on a cancelled upload", method: "PATCH", path: inUpload("lib/app", true, ""), body: []byte("def"), header: []string{"Content-Range", "3-5"}, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "put on a cancelled upload", method: "PUT", path: inUpload("lib/app", true, "?digest="+abc.String()), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},

		// Manifests: size, nesting, media types, descriptors, references.
		{name: "manifest over the limit", method: "PUT", path: at("/v2/lib/app/manifests/big"), body: bytes.Repeat([]byte(" "), 65<<10), header: []string{"Content-Type", mt}, status: 413, code: "SIZE_INVALID"},
		{name: "manifest over the limit chunked", method: "PUT", path: at("/v2/lib/app/manifests/big"), body: append(slices.Clone(manifest), bytes.Repeat([]byte(" "), 65<<10)...),
			chunked: true, header: []string{"Content-Type", mt}, status: 413, code: "SIZE_INVALID"},
		{name: "deeply nested arrays", method: "PUT", path: at("/v2/lib/app/manifests/deep"), header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID",
			body: []byte(`{"schemaVersion":2,"x":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`)},
		{name: "deeply nested objects", method: "PUT", path: at("/v2/lib/app/manifests/deep"), header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID",
			body: []byte(`{"schemaVersion":2,"annotations":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat("}", 10001) + `}`)},
		{name: "manifest Content-Type application/json", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: manifest, header: []string{"Content-Type", "application/json"}, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest Content-Type with path", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: manifest, header: []string{"Content-Type", "../../etc/passwd"}, status: 400, code: "MANIFEST_INVALID"},
		{name: "descriptor media type not a media type", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: descriptor("not a media type", layer.String(), 10),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "descriptor negative size", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: descriptor("application/octet-stream", layer.String(), -1),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "descriptor malformed digest", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: descriptor("application/octet-stream", "sha256:zz", 10),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "descriptor digest with path", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: descriptor("application/octet-stream", "sha256:../../../etc/passwd", 10),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "descriptor md5 digest", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: descriptor("application/octet-stream", "md5:d41d8cd98f00b204e9800998ecf8427e", 10),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest with trailing data", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: append(slices.Clone(manifest), []byte(`{}`)...),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest of invalid UTF-8 and NULs", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: []byte("{\"schemaVersion\":2,\x00\xff\xfe}"),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest with a blob of another repository", method: "PUT", path: at("/v2/lib/app/manifests/v2"), body: descriptor("application/octet-stream", otherBlob.String(), 13),
			header: []string{"Content-Type", mt}, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "index of unknown manifests", method: "PUT", path: at("/v2/lib/app/manifests/list"), body: index(missing),
			header: []string{"Content-Type", "application/vnd.oci.image.index.v1+json"}, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "index of another repository's manifest", method: "PUT", path: at("/v2/lib/app/manifests/list"), body: index(otherMD),
			header: []string{"Content-Type", "application/vnd.oci.image.index.v1+json"}, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},

		// Content of other repositories stays out of reach.
		{name: "blob through a repository not linking it", method: "GET", path: at("/v2/lib/app/blobs/" + otherBlob.String()), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob range through a repository not linking it", method: "GET", path: at("/v2/lib/app/blobs/" + otherBlob.String()), header: []string{"Range", "bytes=0-3"}, status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob head through a repository not linking it", method: "HEAD", path: at("/v2/lib/app/blobs/" + otherBlob.String()), status: 404},
		{name: "blob through an unknown repository", method: "GET", path: at("/v2/nobody/blobs/" + layer.String()), status: 404, code: "BLOB_UNKNOWN"},
		{name: "manifest through another repository", method: "GET", path: at("/v2/lib/app/manifests/" + otherMD.String()), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "blob delete through a repository not linking it", method: "DELETE", path: at("/v2/lib/app/blobs/" + otherBlob.String()), status: 404, code: "BLOB_UNKNOWN"},
		{name: "manifest delete through another repository", method: "DELETE", path: at("/v2/lib/app/manifests/" + otherMD.String()), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "mount from a traversal name", method: "POST", path: at("/v2/lib/app/blobs/uploads/?mount=" + otherBlob.String() + "&from=../other"), status: 400, code: "NAME_INVALID"},

		// Upload sessions are bound to their repository and their id is no path.
		{name: "patch an upload from another repository", method: "PATCH", path: fromOtherRepo(""), body: []byte("def"), header: []string{"Content-Range", "3-5"}, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "finish an upload from another repository", method: "PUT", path: fromOtherRepo("?digest=" + abc.String()), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "status of an upload from another repository", method: "GET", path: fromOtherRepo(""), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "cancel an upload from another repository", method: "DELETE", path: fromOtherRepo(""), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id of encoded dot-dots", method: "PATCH", path: at("/v2/lib/app/blobs/uploads/..%2F..%2Fblobs"), body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id of encoded dot-dots on put", method: "PUT", path: at("/v2/lib/app/blobs/uploads/..%2F..%2F..%2Fevil?digest=" + abc.String()), body: []byte("abc"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id dot-dot", method: "PATCH", path: at("/v2/lib/app/blobs/uploads/.."), body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id dot", method: "PUT", path: at("/v2/lib/app/blobs/uploads/.?digest=" + abc.String()), body: []byte("abc"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id with NUL", method: "DELETE", path: at("/v2/lib/app/blobs/uploads/x%00y"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id with backslashes", method: "PATCH", path: at("/v2/lib/app/blobs/uploads/..%5C..%5Cblobs"), body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path()
			before := h.state(t)
			resp, body := hostileRequest(t, tc.method, base+path, tc.body, tc.chunked, tc.header)
			checkHostileAnswer(t, tc.method+" "+path, resp, body, tc.status, tc.code)
			want := before
			if tc.gone {
				id, _, _ := strings.Cut(path[strings.LastIndexByte(path, '/')+1:], "?")
				want = before.without(id)
			}
			checkHostileState(t, h, want)
		})
	}

	t.Run("body shorter than its Content-Length", func(t *testing.T) {
		loc := upload("lib/app", false)
		before := h.state(t)
		resp, body := hostileShortBody(t, base, loc, 10, []byte("def"), "3-12")
		checkHostileAnswer(t, "PATCH "+loc, resp, body, 400, "BLOB_UPLOAD_INVALID")
		checkHostileState(t, h, before)
		// The session still takes the chunk it expects, and no stray byte
		// of the broken request made it into the blob.
		if resp, b := do(t, "PUT", base+loc+"?digest="+digest.FromString("abcdef").String(), []byte("def"), "Content-Range", "3-5"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("finishing the upload after the broken chunk: %s %s", resp.Status, b)
		}
	})
	if resp, _ := do(t, "GET", base+"/v2/lib/app/manifests/v1", nil); resp.StatusCode != http.StatusOK || digest.FromBytes(manifest) != md {
		t.Errorf("lib/app:v1 after the hostile requests: %s", resp.Status)
	}
}

// openUpload opens an upload session in repo, sends first as its first
// chunk unless empty, cancels the session if cancelled, and returns its
// location.
func openUpload(t *testing.T, base, repo string, first []byte, cancelled bool) string {
	t.Helper()
	resp, _ := do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("start upload: %s", resp.Status)
	}
	if len(first) > 0 {
		if resp, b := do(t, "PATCH", base+loc, first, "Content-Range", fmt.Sprintf("0-%d", len(first)-1)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("first chunk: %s %s", resp.Status, b)
		}
	}
	if cancelled {
		if resp, b := do(t, "DELETE", base+loc, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("cancel upload: %s %s", resp.Status, b)
		}
	}
	return loc
}

func checkHostileAnswer(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, resp.StatusCode, status, body)
	}
	if code == "" {
		return
	}
	if got := errorCode(t, body); got != code {
		t.Errorf("%s: code %s, want %s", what, got, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: error Content-Type %q", what, ct)
	}
}

func checkHostileState(t *testing.T, h *hostileRegistry, want hostileState) {
	t.Helper()
	got := h.state(t)
	if reflect.DeepEqual(got, want) {
		return
	}
	v, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range v.NumField() {
		if !reflect.DeepEqual(v.Field(i).Interface(), w.Field(i).Interface()) {
			t.Errorf("%s changed:\n  before %v\n  after  %v", v.Type().Field(i).Name, w.Field(i).Interface(), v.Field(i).Interface())
		}
	}
}

// TestHostileLimitsExact checks the limits are where the spec puts them: a
// name of exactly 255 characters and a tag of exactly 128 are accepted.
func TestHostileLimitsExact(t *testing.T) {
	h := newHostileRegistry(t, api.Config{})
	name := strings.Repeat("a", 127) + "/" + strings.Repeat("b", 127)
	tag := strings.Repeat("t", 128)
	if len(name) != 255 {
		t.Fatalf("test bug: name of %d characters", len(name))
	}
	_, d := pushImage(t, h.base, name, tag)
	if resp, b := do(t, "GET", h.base+"/v2/"+name+"/manifests/"+tag, nil); resp.StatusCode != http.StatusOK || digest.FromBytes(b) != d {
		t.Fatalf("GET %d-character name, %d-character tag: %s", len(name), len(tag), resp.Status)
	}
}
