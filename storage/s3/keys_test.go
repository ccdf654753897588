package s3

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestKeys(t *testing.T) {
	d := digest.Digest("sha256:" + "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd")
	for _, tc := range []struct {
		root, got, want string
	}{
		{"", newKeys("").blob(d), "blobs/sha256/ab/ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"},
		{"/registry/", newKeys("/registry/").blob(d), "registry/blobs/sha256/ab/ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"},
		{"a/b", newKeys("a/b").uploadData("u1"), "a/b/uploads/u1/data"},
		{"a/b", newKeys("a/b").uploadTail("u1", 3), "a/b/uploads/u1/tail.3"},
		{"", newKeys("").upload("n1.x"), "uploads/n1.x/"},
		{"r", newKeys("r").check("f00"), "r/check/f00"},
		{"/r/", newKeys("/r/").record("registry2-import.json"), "r/records/registry2-import.json"},
		{"r", newKeys("r").foreign("docker/registry/v2/blobs/"), "r/docker/registry/v2/blobs/"},
		{"", newKeys("").foreign("/docker/registry/v2"), "docker/registry/v2"},
	} {
		if tc.got != tc.want {
			t.Errorf("root %q: got %q, want %q", tc.root, tc.got, tc.want)
		}
	}

	k := newKeys("r")
	if got, ok := k.parseBlob(k.blob(d)); !ok || got != d {
		t.Errorf("parseBlob(blob(d)) = %q, %v", got, ok)
	}
	for _, key := range []string{
		"r/blobs/sha256/cd/ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd", // wrong fan-out
		"r/blobs/sha256/ab/ab01",  // not a digest
		"x/blobs/sha256/ab/ab01",  // another root
		"r/blobs/sha256/ab",       // a "directory"
		"r/uploads/u1/tail.1",     // not a blob
		"r/blobs/md5/ab/ab012345", // unknown algorithm
	} {
		if got, ok := k.parseBlob(key); ok {
			t.Errorf("parseBlob(%q) = %q, want no blob", key, got)
		}
	}
	if id, ok := k.parseUpload(k.uploadTail("n1.abc", 2)); !ok || id != "n1.abc" {
		t.Errorf("parseUpload = %q, %v", id, ok)
	}
	if _, ok := k.parseUpload("r/uploads/"); ok {
		t.Error("parseUpload accepted the bare prefix")
	}
	for _, id := range []string{"", ".", "..", "a/b", `a\b`} {
		if checkUploadID(id) == nil {
			t.Errorf("checkUploadID(%q) accepted", id)
		}
	}
}

func TestConfigEndpoint(t *testing.T) {
	no, yes := false, true
	for _, tc := range []struct {
		endpoint   string
		secure     *bool
		wantHost   string
		wantSecure bool
		wantErr    bool
	}{
		{"", nil, "s3.amazonaws.com", true, false},
		{"http://127.0.0.1:9000", nil, "127.0.0.1:9000", false, false},
		{"http://127.0.0.1:9000", &yes, "127.0.0.1:9000", false, false}, // the scheme decides
		{"https://minio.internal", &no, "minio.internal", true, false},
		{"127.0.0.1:9000", nil, "127.0.0.1:9000", true, false}, // registry:2 default
		{"127.0.0.1:9000", &no, "127.0.0.1:9000", false, false},
		{"ftp://x", nil, "", false, true},
		{"http://x/bucket", nil, "", false, true},
	} {
		c := Config{RegionEndpoint: tc.endpoint, Secure: tc.secure}
		host, secure, err := c.endpoint()
		if (err != nil) != tc.wantErr || host != tc.wantHost || secure != tc.wantSecure {
			t.Errorf("%q secure=%v: got %q, %v, %v", tc.endpoint, tc.secure, host, secure, err)
		}
	}

	var c Config
	c.applyDefaults()
	if c.Region != "us-east-1" || c.PartSize != 16<<20 {
		t.Errorf("defaults: %+v", c)
	}
	c.Bucket, c.PartSize = "b", 1<<20
	if c.validate() == nil {
		t.Error("a 1 MiB part size was accepted")
	}
}
