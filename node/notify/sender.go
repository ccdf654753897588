package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/atollhq/atoll/node/queue"
)

// EventsMediaType is the Content-Type of a webhook request, as registry:2
// sends it.
const EventsMediaType = "application/vnd.docker.distribution.events.v1+json"

// EventsMediaTypeV2 is the Content-Type Distribution 3 sends; an
// endpoint's mediatype chooses it.
const EventsMediaTypeV2 = "application/vnd.docker.distribution.events.v2+json"

// maxBatch is the most events sent in one request.
const maxBatch = 32

// send delivers ep's queue in order until ctx is done. After a failure it
// waits Backoff, doubling with each consecutive failure up to maxBackoff,
// and retries the same events; it never skips one.
func (n *Notifier) send(ctx context.Context, ep *endpoint) {
	log := n.log.With("endpoint", ep.cfg.Name)
	d := queue.Drainer{
		Queue: n.q, Stream: ep.cfg.Name, Batch: maxBatch, Wake: ep.wake,
		Backoff: ep.cfg.Backoff, MaxBackoff: max(ep.cfg.Backoff, maxBackoff),
		Deliver: func(ctx context.Context, items []queue.Item) (int, error) {
			events := make([][]byte, len(items))
			for i, it := range items {
				events[i] = it.Value
			}
			if err := ep.post(ctx, envelope(events)); err != nil {
				return 0, err
			}
			ep.delivered.Add(uint64(len(events)))
			ep.pending.Add(-int64(len(events)))
			return len(events), nil
		},
		Failed: func(failures int, err error) {
			ep.failed.Add(1)
			ep.setError(err)
			if failures == ep.cfg.Threshold {
				log.Warn("notification endpoint failing; retrying", "failures", failures,
					"pending", ep.pending.Load(), "error", err)
			} else {
				log.Debug("notification delivery failed", "failures", failures, "error", err)
			}
		},
		Recovered: func(failures int) {
			if failures >= ep.cfg.Threshold {
				log.Info("notification endpoint recovered", "failures", failures)
			}
		},
	}
	d.Run(ctx)
}

// envelope wraps queued events, each already JSON, in registry:2's
// envelope: {"events":[...]}.
func envelope(events [][]byte) []byte {
	size := len(`{"events":[]}`) + len(events)
	for _, e := range events {
		size += len(e)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"events":[`...)
	for i, e := range events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...)
}

// post sends body to the endpoint within its timeout. Like registry:2, it
// takes any status from 200 to 399 as accepted.
func (ep *endpoint) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, ep.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	for k, vs := range ep.cfg.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", ep.mediaType)
	resp, err := ep.client.Do(req)
	if err != nil {
		return err // *url.Error: names the method and URL, without password
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("POST %s: status %s", req.URL.Redacted(), resp.Status)
	}
	return nil
}
