package registry2

import (
	"log/slog"
	"sync"
	"time"
)

// progress counts the blobs and bytes done, for the log: objects and bytes
// done of the total, the rate, and the time left at that rate.
type progress struct {
	mu           sync.Mutex
	start        time.Time
	total, done  int
	bytes, bdone int64
}

func newProgress(total int, bytes int64) *progress {
	return &progress{start: time.Now(), total: total, bytes: bytes}
}

func (p *progress) add(size int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	p.bdone += size
}

// log writes one progress line.
func (p *progress) log(log *slog.Logger, msg string) {
	p.mu.Lock()
	done, total, bdone, bytes := p.done, p.total, p.bdone, p.bytes
	elapsed := time.Since(p.start)
	p.mu.Unlock()
	rate := float64(bdone) / max(elapsed.Seconds(), 1e-3)
	left := "unknown"
	if rate > 0 {
		left = time.Duration(float64(bytes-bdone) / rate * float64(time.Second)).Round(time.Second).String()
	}
	log.Info(msg, "blobs", done, "of", total, "bytes", bdone, "ofBytes", bytes,
		"rateMBps", int64(rate/1e6), "elapsed", elapsed.Round(time.Millisecond), "left", left)
}

// logEvery logs progress every interval until the returned stop is called.
func (p *progress) logEvery(log *slog.Logger, interval time.Duration, msg string) (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				p.log(log, msg)
			}
		}
	}()
	return func() { close(quit); <-exited }
}
