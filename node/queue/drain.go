package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Drainer delivers one stream of a Queue in order, at least once, retrying
// failures with a doubling backoff: the webhook sender's loop.
type Drainer struct {
	// Queue and Stream name what is drained.
	Queue  *Queue
	Stream string
	// Batch is the most items one Deliver call gets. Default 32.
	Batch int
	// Backoff is the wait after a failure; it doubles with each
	// consecutive failure up to MaxBackoff. Defaults 1s and 1m.
	Backoff, MaxBackoff time.Duration
	// Wake is signalled after an append; Run waits on it when the stream
	// is empty. Required.
	Wake <-chan struct{}
	// Deliver sends items, oldest first, and returns how many of them,
	// from the first, were delivered: those are removed. An error with
	// done < len(items) is retried after the backoff. Required.
	Deliver func(ctx context.Context, items []Item) (done int, err error)
	// Failed is told each failure and the count of consecutive ones.
	// Optional.
	Failed func(failures int, err error)
	// Recovered is told when a delivery succeeds after failures. Optional.
	Recovered func(failures int)
}

// Run drains the stream until ctx is done; undelivered items stay on disk
// for the next Run. It never skips an item.
func (d *Drainer) Run(ctx context.Context) {
	batch := d.Batch
	if batch <= 0 {
		batch = 32
	}
	backoff, ceiling := d.Backoff, d.MaxBackoff
	if backoff <= 0 {
		backoff = time.Second
	}
	if ceiling < backoff {
		ceiling = max(backoff, time.Minute)
	}
	wait, failures := backoff, 0
	for ctx.Err() == nil {
		err := d.once(ctx, batch)
		if errors.Is(err, errEmpty) {
			select {
			case <-d.Wake:
			case <-ctx.Done():
			}
			continue
		}
		if err == nil {
			if failures > 0 && d.Recovered != nil {
				d.Recovered(failures)
			}
			wait, failures = backoff, 0
			continue
		}
		if ctx.Err() != nil {
			return // stopped mid-delivery; the items stay queued
		}
		failures++
		if d.Failed != nil {
			d.Failed(failures, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		wait = min(2*wait, ceiling)
	}
}

var errEmpty = errors.New("queue empty")

func (d *Drainer) once(ctx context.Context, batch int) error {
	items, err := d.Queue.Peek(d.Stream, batch)
	if err != nil {
		return fmt.Errorf("read queue: %w", err)
	}
	if len(items) == 0 {
		return errEmpty
	}
	done, derr := d.Deliver(ctx, items)
	done = min(max(done, 0), len(items))
	if done > 0 {
		keys := make([][]byte, done)
		for i := range done {
			keys[i] = items[i].Key
		}
		if err := d.Queue.Remove(d.Stream, keys); err != nil {
			// Delivered but still queued: they will be sent again.
			return fmt.Errorf("dequeue delivered items: %w", err)
		}
	}
	if derr == nil && done < len(items) {
		derr = fmt.Errorf("%d of %d items delivered", done, len(items))
	}
	return derr
}
