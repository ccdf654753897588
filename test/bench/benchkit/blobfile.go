package benchkit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// copyBuf is the size of the benches' reads and writes of blob bytes.
const copyBuf = 1 << 20

// BlobFile is a blob on disk that pushes stream from, as a client pushing
// a layer file does: random bytes whose first 16 are restamped per push,
// so no digest is ever pushed twice. Its methods are for one goroutine.
type BlobFile struct {
	f             *os.File
	size          int64
	nonce, serial uint64
}

// NewBlobFile writes mib MiB of random data to a file in dir (the system
// temp dir if empty).
func NewBlobFile(dir string, mib int) (*BlobFile, error) {
	Logf("writing a %d MiB blob file", mib)
	f, err := os.CreateTemp(dir, "bench-blob-*")
	if err != nil {
		return nil, err
	}
	b := &BlobFile{f: f, size: int64(mib) << 20}
	buf := make([]byte, copyBuf)
	for off := int64(0); off < b.size; off += copyBuf {
		_, _ = rand.Read(buf)
		if _, err := f.Write(buf); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("writing %s: %w", f.Name(), err)
		}
	}
	b.nonce = binary.LittleEndian.Uint64(buf[8:16])
	return b, nil
}

// Size is the blob's length in bytes.
func (b *BlobFile) Size() int64 { return b.size }

// Fresh restamps the blob and returns its digest (read and hashed from
// the file, outside any timing).
func (b *BlobFile) Fresh() (string, error) {
	b.serial++
	var stamp [16]byte
	binary.LittleEndian.PutUint64(stamp[0:8], b.serial)
	binary.LittleEndian.PutUint64(stamp[8:16], b.nonce)
	if _, err := b.f.WriteAt(stamp[:], 0); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, b.Section(0, b.size), make([]byte, copyBuf)); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Section is n bytes of the blob from off, streamed from the file.
func (b *BlobFile) Section(off, n int64) *io.SectionReader { return io.NewSectionReader(b.f, off, n) }

// Close removes the file.
func (b *BlobFile) Close() error {
	_ = b.f.Close()
	return os.Remove(b.f.Name())
}

// PushFile uploads the blob as POST + one PUT ?digest= streamed from disk.
func PushFile(ctx context.Context, hc *http.Client, base, repo string, b *BlobFile, dgst string) error {
	loc, err := StartUpload(ctx, hc, base, repo)
	if err != nil {
		return err
	}
	putURL, err := withDigest(loc, dgst)
	if err != nil {
		return err
	}
	// The body is the file itself, so Go's transport hands it to the
	// socket with sendfile: the client costs the machine's cores little
	// beside the registry it measures, as a client on another host would.
	// (A Section would be copied through user space.)
	f, err := os.Open(b.f.Name())
	if err != nil {
		return err
	}
	defer f.Close() // the transport closes it too; a second Close only fails
	_, err = SendStream(ctx, hc, http.MethodPut, putURL, f, b.size,
		map[string]string{"Content-Type": OctetStream}, http.StatusCreated)
	return err
}

// SendStream is Send with a body of n bytes read from body.
func SendStream(ctx context.Context, hc *http.Client, method, rawURL string, body io.Reader, n int64, hdr map[string]string, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := CheckStatus(resp, want); err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, nil
}

// PullDiscard GETs a blob of size bytes, reading it in 1 MiB reads into
// nothing, as fast as the registry sends; it checks the length (the
// content is checked once, untimed, by PullDigest).
func PullDiscard(ctx context.Context, hc *http.Client, url string, size int64) error {
	resp, err := Get(ctx, hc, url, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(io.Discard, onlyReader{resp.Body}, make([]byte, copyBuf))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if n != size {
		return fmt.Errorf("GET %s: %d bytes, want %d", url, n, size)
	}
	return nil
}

// PullDigest GETs a blob and returns the digest of what came.
func PullDigest(ctx context.Context, hc *http.Client, url string) (string, error) {
	resp, err := Get(ctx, hc, url, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, resp.Body, make([]byte, copyBuf)); err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// onlyReader hides a reader's WriteTo, so io.CopyBuffer uses its buffer.
type onlyReader struct{ io.Reader }

// FsyncWrite is the machine's durable sequential write speed in MB/s, as
// `dd bs=1M conv=fsync` measures it: b's bytes copied to a new file in dir
// (where the registries keep their data) in 1 MiB writes, then fsync'd.
//
// The copy is made twice and only the second is timed. On a virtual
// machine whose host takes back the guest's free memory (virtio-balloon's
// free page reporting, as on the machines here), the first copy pays for
// the host faulting in fresh pages for the page cache: its writes took
// 2.4 s a GiB and the whole copy ran at 340-380 MB/s, against 1,300-1,700
// for the same copy onto memory the guest had just freed. That cost is the
// virtual machine's memory, not the disk, and a push written with O_DIRECT
// never pays it; timed, it swung the reference 4x from one round to the
// next. The untimed copy is removed just before the timed one starts, so
// the timed one's page cache reuses its memory.
func FsyncWrite(dir string, b *BlobFile) (float64, error) {
	primer := filepath.Join(dir, "fsync-reference-primer")
	defer os.Remove(primer)
	if err := fsyncedCopy(primer, b); err != nil {
		return 0, err
	}
	if err := os.Remove(primer); err != nil {
		return 0, err
	}
	path := filepath.Join(dir, "fsync-reference")
	defer os.Remove(path)
	start := time.Now()
	if err := fsyncedCopy(path, b); err != nil {
		return 0, err
	}
	return MBps(b.size, time.Since(start)), nil
}

// fsyncedCopy copies b's bytes to a new file at path in 1 MiB writes and
// fsyncs it.
func fsyncedCopy(path string, b *BlobFile) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(onlyWriter{f}, b.Section(0, b.size), make([]byte, copyBuf))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync'd write to %s: %w", path, err)
	}
	return nil
}

// onlyWriter hides a writer's ReadFrom (os.File's would copy_file_range).
type onlyWriter struct{ io.Writer }

// SHA256Speed is Go's SHA-256 throughput in MB/s over n bytes held in memory.
func SHA256Speed(n int64) float64 {
	buf := make([]byte, copyBuf)
	_, _ = rand.Read(buf)
	h := sha256.New()
	start := time.Now()
	for done := int64(0); done < n; done += copyBuf {
		h.Write(buf)
	}
	h.Sum(nil)
	return MBps(n, time.Since(start))
}

// Name is the path of the blob's file.
func (b *BlobFile) Name() string { return b.f.Name() }
