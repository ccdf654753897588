package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/atollhq/atoll/storage/metadb"
)

// backupCommand copies a running member's metadata.db to a file: the
// member's copy as of one commit, taken while it serves. The file is
// written beside its name, synced, checked page by page and only then
// renamed to it, so a file of that name is always a whole, checked copy.
func backupCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://127.0.0.1:5000", "URL of the member")
	out := fs.String("o", "", "file to write (default metadata-<UTC time>.db)")
	var af adminFlags
	af.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		*out = "metadata-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	}
	base := baseURL(*addr)
	start := time.Now()
	resp, err := af.call(ctx, http.MethodGet, base, "/_atoll/v1/metadata/backup", stderr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	tmp := *out + ".partial"
	n, err := download(tmp, resp.Body, resp.ContentLength, stderr)
	if err == nil {
		fmt.Fprintf(stdout, "checking %s (%s) ...\n", *out, humanBytes(n))
		err = metadb.Verify(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, *out)
	}
	if err == nil {
		err = syncDir(filepath.Dir(*out))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup of %s: %w", base, err)
	}
	fmt.Fprintf(stdout, "wrote %s: %s from %s in %s\nto restore it, stop the member and put it in place of its data directory's metadata.db\n",
		*out, humanBytes(n), base, time.Since(start).Round(time.Millisecond))
	return nil
}

// download writes body, of length size (-1: unknown), to the new file
// path and syncs it, printing progress to stderr every few seconds. A body
// shorter than size fails.
func download(path string, body io.Reader, size int64, stderr io.Writer) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	p := &progress{w: f, size: size, out: stderr, last: time.Now()}
	n, err := io.Copy(p, body)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("cut short: %d of %d bytes", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	return n, errors.Join(err, f.Close())
}

// progress counts what passes through it to w and prints how far it got
// to out every 5 seconds.
type progress struct {
	w    io.Writer
	size int64
	n    int64
	out  io.Writer
	last time.Time
}

func (p *progress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		if p.size > 0 {
			fmt.Fprintf(p.out, "  %s of %s (%d %%)\n", humanBytes(p.n), humanBytes(p.size), p.n*100/p.size)
		} else {
			fmt.Fprintf(p.out, "  %s\n", humanBytes(p.n))
		}
	}
	return n, err
}

// syncDir syncs directory dir, so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
