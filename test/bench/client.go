package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// pushChunked uploads the blob as POST, one PATCH per chunk streamed from
// the file (following Location each time), then an empty PUT ?digest=.
func pushChunked(ctx context.Context, hc *http.Client, base, repo string, blob *benchkit.BlobFile, dgst string, chunk int64) error {
	loc, err := benchkit.StartUpload(ctx, hc, base, repo)
	if err != nil {
		return err
	}
	for off := int64(0); off < blob.Size(); off += chunk {
		n := min(chunk, blob.Size()-off)
		hdr := map[string]string{
			"Content-Type":  benchkit.OctetStream,
			"Content-Range": fmt.Sprintf("%d-%d", off, off+n-1),
		}
		resp, err := benchkit.SendStream(ctx, hc, http.MethodPatch, loc, blob.Section(off, n), n, hdr, http.StatusAccepted)
		if err != nil {
			return fmt.Errorf("chunk at %d: %w", off, err)
		}
		if loc, err = benchkit.NextLocation(resp); err != nil {
			return err
		}
	}
	return benchkit.FinishUpload(ctx, hc, loc, dgst, nil)
}

// putManifest uploads a manifest under tag and checks the returned digest.
func putManifest(ctx context.Context, hc *http.Client, base, repo, tag, mediaType string, body []byte) error {
	hdr := map[string]string{"Content-Type": mediaType}
	resp, err := benchkit.Send(ctx, hc, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, body, hdr, http.StatusCreated)
	if err != nil {
		return err
	}
	if got, want := resp.Header.Get("Docker-Content-Digest"), benchkit.Digest(body); got != "" && got != want {
		return fmt.Errorf("PUT manifest: Docker-Content-Digest %s, want %s", got, want)
	}
	return nil
}

// getManifest fetches a manifest and checks it is byte-identical to want.
func getManifest(ctx context.Context, hc *http.Client, base, repo, tag, mediaType string, want []byte) error {
	resp, err := benchkit.Get(ctx, hc, base+"/v2/"+repo+"/manifests/"+tag, map[string]string{"Accept": mediaType})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("GET manifest: body differs from what was pushed (%d vs %d bytes)", len(got), len(want))
	}
	if ct := resp.Header.Get("Content-Type"); ct != mediaType {
		return fmt.Errorf("GET manifest: Content-Type %q, want %q", ct, mediaType)
	}
	return nil
}
