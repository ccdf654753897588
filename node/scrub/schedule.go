package scrub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Config schedules scrubs (the file's scrub: section).
type Config struct {
	// Interval runs a scrub of the member's blobs on a schedule. Default
	// 0: only on demand (atoll scrub).
	Interval time.Duration
	// Rate is how many bytes a second a scheduled scrub reads at most;
	// 0: as fast as the disk goes.
	Rate int64
}

// Schedule is when scheduled scrubs are due: one Interval after the last
// one finished. The time is kept in a file, so that a member restarted
// more often than its interval still scrubs; a member with no file yet
// starts counting now.
type Schedule struct {
	Path     string
	Interval time.Duration
}

type scheduleFile struct {
	Last time.Time `json:"last"`
}

// Next returns when the next scrub is due, as of now.
func (s Schedule) Next(now time.Time) (time.Time, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return now.Add(s.Interval), s.Done(now)
	}
	if err != nil {
		return now.Add(s.Interval), fmt.Errorf("scrub schedule: %w", err)
	}
	var f scheduleFile
	if err := json.Unmarshal(b, &f); err != nil || f.Last.IsZero() {
		return now.Add(s.Interval), errors.Join(fmt.Errorf("scrub schedule %s: unreadable, counting from now", s.Path), s.Done(now))
	}
	return f.Last.Add(s.Interval), nil
}

// Done records that a scrub finished at t.
func (s Schedule) Done(t time.Time) error {
	b, _ := json.Marshal(scheduleFile{Last: t.UTC()})
	tmp := s.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("scrub schedule: %w", err)
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		return fmt.Errorf("scrub schedule: %w", err)
	}
	d, err := os.Open(filepath.Dir(s.Path))
	if err != nil {
		return fmt.Errorf("scrub schedule: %w", err)
	}
	defer d.Close()
	return d.Sync()
}
