package node

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/s3"
	miniotest "github.com/atollhq/atoll/test/minio"
)

// optionalCapabilities answers, for each optional BlobStore capability the
// storage package declares, whether a store has it.
var optionalCapabilities = map[string]func(s storage.BlobStore) bool{
	"BlobWalker":    func(s storage.BlobStore) bool { _, ok := s.(storage.BlobWalker); return ok },
	"UploadPurger":  func(s storage.BlobStore) bool { _, ok := s.(storage.UploadPurger); return ok },
	"UsageReporter": func(s storage.BlobStore) bool { _, ok := s.(storage.UsageReporter); return ok },
	"URLSigner":     func(s storage.BlobStore) bool { _, ok := s.(storage.URLSigner); return ok },
}

// declaredCapabilities returns the interfaces of package storage whose
// comment calls them an optional BlobStore capability.
func declaredCapabilities(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "storage", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, spec := range g.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := g.Doc
				if ts.Doc != nil {
					doc = ts.Doc
				}
				if _, ok := ts.Type.(*ast.InterfaceType); ok && doc != nil &&
					strings.Contains(doc.Text(), "optional BlobStore capability") {
					names = append(names, ts.Name.Name)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("found no optional BlobStore capability in package storage")
	}
	return names
}

// TestDecoratorsKeepCapabilities checks, in every storage mode, that the
// blob store the registry serves from answers each optional capability's
// type assertion the way the member's own store does: a decorator that
// hid the upload purge once leaked abandoned uploads in clusters and
// buckets.
func TestDecoratorsKeepCapabilities(t *testing.T) {
	caps := declaredCapabilities(t)
	t.Logf("optional BlobStore capabilities in package storage: %v", caps)
	for _, name := range caps {
		if optionalCapabilities[name] == nil {
			t.Fatalf("storage declares the optional capability %s: add it to optionalCapabilities here, "+
				"and to localStore if both backends have it (else to withOptional)", name)
		}
	}
	srv := miniotest.Start(t)
	bucket := func(name string) *s3.Config {
		secure := false
		return &s3.Config{RegionEndpoint: "http://" + srv.Endpoint(), Bucket: name,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Secure: &secure}
	}
	clustered := func(c *Config) {
		c.Cluster.Enabled = true
		c.Cluster.GossipAddr, c.Cluster.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	for _, mode := range []struct {
		name      string
		configure func(c *Config)
	}{
		{"filesystem", func(*Config) {}},
		{"cluster", func(c *Config) { clustered(c) }},
		{"s3", func(c *Config) { c.Storage.S3 = bucket("caps-s3") }},
		{"s3 with redirects", func(c *Config) {
			c.Storage.S3 = bucket("caps-redirect")
			c.Storage.S3.Redirect = true
		}},
		{"shared bucket", func(c *Config) {
			c.Storage.S3 = bucket("caps-shared")
			clustered(c)
		}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			cfg := Config{DataDir: t.TempDir()}
			cfg.Cluster.NodeName = "caps"
			mode.configure(&cfg)
			n, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			for _, name := range caps {
				has := optionalCapabilities[name]
				if got, want := has(n.served), has(n.local); got != want {
					t.Errorf("the registry's %T answers %s %v; the member's %T answers %v", n.served, name, got, n.local, want)
				}
			}
			checkPurgeReaches(t, n)
		})
	}
}

// checkPurgeReaches plants an upload's bytes on the member's disk, older
// than the purge age and with no session, and checks that the registry's
// upload expiry removes them through the decorated store.
func checkPurgeReaches(t *testing.T, n *Node) {
	t.Helper()
	ctx := context.Background()
	var orphan string
	if n.cache != nil {
		orphan = filepath.Join(n.cfg.DataDir, "cache", "uploads", "fill-orphan")
	} else {
		orphan = filepath.Join(n.cfg.DataDir, "uploads", "peer-orphan")
	}
	if err := os.WriteFile(orphan, []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(orphan, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := n.reg.ExpireUploads(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("%s survived the upload purge (%v)", orphan, err)
	}
}
