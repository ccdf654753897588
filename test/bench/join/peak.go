package main

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// peakRSS samples a process's anonymous RSS (what its heap and stacks
// take, not the database file it maps) every interval until stopped, and
// keeps the highest: the RSS a member reports once ready says nothing of
// what its install took on the way.
type peakRSS struct {
	kib  atomic.Int64
	stop context.CancelFunc
	done chan struct{}
}

// samplePeakRSS starts sampling pid's RssAnon.
func samplePeakRSS(ctx context.Context, pid int, interval time.Duration) *peakRSS {
	ctx, cancel := context.WithCancel(ctx)
	p := &peakRSS{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if kib := rssAnonKiB(pid); kib > p.kib.Load() {
				p.kib.Store(kib)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends the sampling and returns the peak in MiB.
func (p *peakRSS) Stop() int64 {
	p.stop()
	<-p.done
	return p.kib.Load() >> 10
}

// rssAnonKiB is pid's RssAnon in KiB, 0 when unknown.
func rssAnonKiB(pid int) int64 {
	v := procStatus(pid, "RssAnon:")
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
