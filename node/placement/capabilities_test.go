package placement

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

	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
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
	files, err := filepath.Glob(filepath.Join("..", "..", "storage", "*.go"))
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
				"and to LocalStore if both backends have it (else to withOptional)", name)
		}
	}
	srv := miniotest.Start(t)
	bucket := func(name string) *s3.Config {
		secure := false
		return &s3.Config{RegionEndpoint: "http://" + srv.Endpoint(), Bucket: name,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Secure: &secure}
	}
	for _, mode := range []struct {
		name      string
		bucket    *s3.Config // nil: the filesystem
		clustered bool
	}{
		{name: "filesystem"},
		{name: "cluster", clustered: true},
		{name: "s3", bucket: bucket("caps-s3")},
		{name: "s3 with redirects", bucket: func() *s3.Config { c := bucket("caps-redirect"); c.Redirect = true; return c }()},
		{name: "shared bucket", bucket: bucket("caps-shared"), clustered: true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			deps := Deps{Self: "caps"}
			if mode.bucket != nil {
				store, err := s3.New(ctx, *mode.bucket)
				if err != nil {
					t.Fatal(err)
				}
				if deps.Cache, err = NewCache(ctx, store, filepath.Join(dir, "cache"), 1<<20); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(deps.Cache.Wait)
				deps.Local = store
			} else {
				store, err := filesystem.New(dir)
				if err != nil {
					t.Fatal(err)
				}
				deps.Local = store
			}
			if mode.clustered {
				deps.Transport, deps.Members = peer.NewFakeBlobTransport(), NewFakeMembers("caps", "caps", "other")
			}
			p, err := New(Config{}, deps)
			if err != nil {
				t.Fatal(err)
			}
			served := p.Served()
			for _, name := range caps {
				has := optionalCapabilities[name]
				if got, want := has(served), has(deps.Local); got != want {
					t.Errorf("the registry's %T answers %s %v; the member's %T answers %v", served, name, got, deps.Local, want)
				}
			}
			checkPurgeReaches(t, served, dir, deps.Cache != nil)
		})
	}
}

// checkPurgeReaches plants an upload's bytes on the member's disk (in dir),
// older than the purge age and with no session, and checks that the purge
// the registry runs on its store (api's ExpireUploads) removes them through
// the decorated store.
func checkPurgeReaches(t *testing.T, served storage.BlobStore, dir string, cached bool) {
	t.Helper()
	ctx := context.Background()
	var orphan string
	if cached {
		orphan = filepath.Join(dir, "cache", "uploads", "fill-orphan")
	} else {
		orphan = filepath.Join(dir, "uploads", "peer-orphan")
	}
	if err := os.WriteFile(orphan, []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(orphan, old, old); err != nil {
		t.Fatal(err)
	}
	p, ok := served.(storage.UploadPurger)
	if !ok {
		t.Fatalf("the registry's %T purges no uploads", served)
	}
	if err := p.PurgeUploads(ctx, time.Now().Add(-24*time.Hour), func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("%s survived the upload purge (%v)", orphan, err)
	}
}
