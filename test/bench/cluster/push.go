package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// The push scenario's references: what this machine can do when it writes
// a blob the way a cluster must, with nothing of atoll in the way. Each is
// measured in every round beside atoll's pushes, so the report can say
// what fraction of the machine's bound a push reaches (every process
// shares the same cores and the same disk):
//
//   - bound 1 copy: the client's bytes over loopback TCP to a writer that
//     hashes (SHA-256), writes and fsyncs them: a single node's push, bare;
//   - bound R=2 via an owner: to a relay that writes its copy the same way
//     and passes the bytes on over loopback TCP to one other writer;
//   - bound R=2 via the non-owner: to a relay that keeps no copy and
//     passes the bytes on to two writers.
//
// The clock stops when the last writer's fsync returned. Everything runs
// in this process (goroutines, real sockets, real files in the work dir).

// boundBuf is the size of the references' reads and writes.
const boundBuf = 1 << 20

// pushBound pushes data to a bare relay that writes a copy when local and
// passes the bytes on to sinks writers, and returns the MB/s until every
// copy is durable.
func pushBound(ctx context.Context, dir string, data []byte, local bool, sinks int) (float64, error) {
	dir, err := os.MkdirTemp(dir, "push-bound-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var wg sync.WaitGroup
	errs := make(chan error, sinks+2)
	var outs []net.Conn
	defer func() {
		for _, c := range outs {
			_ = c.Close()
		}
	}()
	for i := range sinks {
		in, out, err := tcpPair(ctx)
		if err != nil {
			return 0, err
		}
		outs = append(outs, out)
		wg.Go(func() {
			defer in.Close()
			errs <- writeCopy(filepath.Join(dir, fmt.Sprintf("sink%d", i)), in)
		})
	}
	in, client, err := tcpPair(ctx)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	start := time.Now()
	wg.Go(func() {
		defer in.Close()
		errs <- relay(filepath.Join(dir, "relay"), in, local, outs)
	})
	wg.Go(func() {
		_, err := client.Write(data)
		if err == nil {
			err = client.(*net.TCPConn).CloseWrite()
		}
		errs <- err
	})
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return benchkit.MBps(int64(len(data)), elapsed), nil
}

// relay reads src to its end, writes each read to path when local, and
// to every out, which it closes for writing at the end.
func relay(path string, src io.Reader, local bool, outs []net.Conn) error {
	var dsts []io.Writer
	var f *hashedFile
	if local {
		var err error
		if f, err = createHashed(path); err != nil {
			return err
		}
		defer f.Close()
		dsts = append(dsts, f)
	}
	for _, o := range outs {
		dsts = append(dsts, o)
	}
	if err := pump(src, dsts...); err != nil {
		return err
	}
	for _, o := range outs {
		if err := o.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
	}
	if f != nil {
		return f.Sync()
	}
	return nil
}

// writeCopy hashes and writes what src yields to path and fsyncs it.
func writeCopy(path string, src io.Reader) error {
	f, err := createHashed(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pump(src, f); err != nil {
		return err
	}
	return f.Sync()
}

// pump writes each read of src, up to boundBuf bytes, to every dst in
// turn, until src ends.
func pump(src io.Reader, dsts ...io.Writer) error {
	buf := make([]byte, boundBuf)
	for {
		n, rerr := src.Read(buf)
		for _, w := range dsts {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// hashedFile writes a file and hashes what it writes, and starts the
// writeback of every 4 MiB written, as a member's upload does.
type hashedFile struct {
	*os.File
	h                hash.Hash
	written, flushed int64
}

func createHashed(path string) (*hashedFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &hashedFile{File: f, h: sha256.New()}, nil
}

func (f *hashedFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	_, _ = f.h.Write(p[:n])
	if f.written += int64(n); f.written-f.flushed >= 4<<20 {
		_ = unix.SyncFileRange(int(f.Fd()), f.flushed, f.written-f.flushed, unix.SYNC_FILE_RANGE_WRITE)
		f.flushed = f.written
	}
	return n, err
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(ctx context.Context) (in, out net.Conn, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	var d net.Dialer
	out, err = d.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	if in = <-accepted; in == nil {
		_ = out.Close()
		return nil, nil, errors.New("accepting a loopback connection failed")
	}
	return in, out, nil
}

// runPush times pushes of fresh blobs: POST + one PUT ?digest= with the
// whole body (the OCI "monolithic" upload, a session) to the single node,
// and to the R=2 cluster through a member the ring names an owner of the
// blob and through the one it does not; and POST ?digest= with the body
// (digest known from the first byte) through the non-owner. Then the
// machine's bounds (above). Before each timed push the earlier copies have
// settled on their owners and the page cache is written back (untimed), so
// no push pays for the one before.
func (b *bench) runPush(ctx context.Context, round int) error {
	type variant struct {
		c               *cluster
		viaOwner, known bool
		key             string
	}
	for _, v := range benchkit.Ordered(round, []variant{
		{b.single, true, false, "push-single"},
		{b.r2, true, false, "push-r2-owner"},
		{b.r2, false, false, "push-r2-nonowner"},
		{b.r2, false, true, "push-r2-known-nonowner"},
	}) {
		data, dgst := b.Fresh()
		owners := v.c.predict(dgst)
		var via *member
		for _, m := range v.c.members {
			if slices.Contains(owners, m.name) == v.viaOwner {
				via = m
				break
			}
		}
		syscall.Sync()
		start := time.Now()
		push := benchkit.PushMonolithic
		if v.known {
			push = pushKnown
		}
		if err := push(ctx, b.hc, via.base, repoPush, data, dgst); err != nil {
			return fmt.Errorf("%s: push via %s: %w", v.c.label, via.name, err)
		}
		elapsed := time.Since(start)
		holders, _, err := v.c.placement(dgst)
		if err != nil {
			return err
		}
		b.res.record(round, v.key, benchkit.MBps(int64(len(data)), elapsed), "MB/s", v.c.label+" via "+via.name)
		if v.c != b.single && !sameSet(names(holders), owners) {
			// A session's copies sit on the holders chosen as its bytes
			// arrived until rebalancing moves them to the owners.
			benchkit.Logf("push via %s (ring owner: %v): copies on %v, owners %v", via.name, v.viaOwner, names(holders), owners)
			if err := v.c.settle(ctx, dgst, owners); err != nil {
				benchkit.Logf("%v", err)
			}
		}
	}
	if err := b.runPushBounds(ctx, round); err != nil {
		return err
	}
	b.recordPushFractions(round)
	return nil
}

// pushKnown uploads data as one POST ?digest= with the body.
func pushKnown(ctx context.Context, hc *http.Client, base, repo string, data []byte, dgst string) error {
	u := base + "/v2/" + repo + "/blobs/uploads/?digest=" + url.QueryEscape(dgst)
	resp, err := benchkit.Send(ctx, hc, http.MethodPost, u, data, map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// settle waits, untimed, until blob dgst is on owners and nowhere else.
func (c *cluster) settle(ctx context.Context, dgst string, owners []string) error {
	return benchkit.Poll(ctx, time.Minute, nil, func(context.Context) error {
		holders, _, err := c.placement(dgst)
		if err != nil {
			return err
		}
		if got := names(holders); !sameSet(got, owners) {
			return fmt.Errorf("%s: blob %s on %v, owners %v", c.label, dgst, got, owners)
		}
		return nil
	})
}

// runPushBounds records the three references of one round, in the
// round's order.
func (b *bench) runPushBounds(ctx context.Context, round int) error {
	type variant struct {
		key   string
		local bool
		sinks int
	}
	for _, v := range benchkit.Ordered(round, []variant{
		{"push-bound-single", true, 0}, {"push-bound-owner", true, 1}, {"push-bound-nonowner", false, 2},
	}) {
		syscall.Sync()
		mbps, err := pushBound(ctx, b.cfg.workdir, b.Data, v.local, v.sinks)
		if err != nil {
			return fmt.Errorf("%s: %w", v.key, err)
		}
		b.res.record(round, v.key, mbps, "MB/s", "bare relay, loopback TCP, sha256 + fsync")
	}
	return nil
}

// pushRows are the push scenario's rows: atoll's pushes, the machine's
// bounds, and each cluster push as a fraction of its bound.
func pushRows(size string) []row {
	return []row{
		{scenario: "push", key: "push-single", title: "push " + size + " monolithic, single node"},
		{scenario: "push", key: "push-r2-owner", title: "  3 members R=2, via an owner", base: "push-single"},
		{scenario: "push", key: "push-r2-nonowner", title: "  3 members R=2, via the non-owner", base: "push-single", goal: 0.8, target: ">= 0.80x single node"},
		{scenario: "push", key: "push-r2-known-nonowner", title: "  3 members R=2, POST ?digest= via the non-owner", base: "push-single"},
		{scenario: "push", key: "push-bound-single", title: "bound: bare writer, 1 copy (sha256, write, fsync)"},
		{scenario: "push", key: "push-bound-owner", title: "  bare relay writing 1 copy + 1 writer (R=2 via an owner)", base: "push-bound-single"},
		{scenario: "push", key: "push-bound-nonowner", title: "  bare relay to 2 writers (R=2 via the non-owner)", base: "push-bound-single"},
		{scenario: "push", key: "push-single-of-bound", unit: "x", title: "single node push / its bound, per round"},
		{scenario: "push", key: "push-r2-owner-of-bound", unit: "x", title: "R=2 via an owner / its bound, per round"},
		{scenario: "push", key: "push-r2-nonowner-of-bound", unit: "x", title: "R=2 via the non-owner / relay writing 1 copy + 1 writer, per round"},
		{scenario: "push", key: "push-r2-known-nonowner-of-bound", unit: "x", title: "R=2 POST ?digest= via the non-owner / relay to 2 writers, per round"},
	}
}

// recordPushFractions records, for round, each push's fraction of its
// bound measured in the same round.
func (b *bench) recordPushFractions(round int) {
	for _, k := range []struct{ push, bound string }{
		{"push-single", "push-bound-single"},
		{"push-r2-owner", "push-bound-owner"},
		{"push-r2-nonowner", "push-bound-owner"}, // a session: here + 1 holder
		{"push-r2-known-nonowner", "push-bound-nonowner"},
	} {
		vs, bs := b.res[k.push], b.res[k.bound]
		if len(vs) == 0 || len(bs) == 0 {
			continue
		}
		b.res.record(round, k.push+"-of-bound", vs[len(vs)-1]/bs[len(bs)-1], "x", "same round")
	}
}

// sameSet reports whether a and b hold the same names.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
