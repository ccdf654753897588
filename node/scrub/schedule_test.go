package scrub

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The schedule counts from the last scrub that finished, across restarts:
// a member restarted more often than its interval still scrubs.
func TestSchedule(t *testing.T) {
	s := Schedule{Path: filepath.Join(t.TempDir(), "scrub.json"), Interval: 24 * time.Hour}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if next, err := s.Next(t0); err != nil || !next.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("first Next: %v, %v; want a day from now", next, err)
	}
	// Restarted an hour later: still due a day after the first start.
	if next, err := s.Next(t0.Add(time.Hour)); err != nil || !next.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("Next after a restart: %v, %v; want %v", next, err, t0.Add(24*time.Hour))
	}
	done := t0.Add(25 * time.Hour)
	if err := s.Done(done); err != nil {
		t.Fatal(err)
	}
	if next, err := s.Next(done.Add(time.Minute)); err != nil || !next.Equal(done.Add(24*time.Hour)) {
		t.Fatalf("Next after a scrub: %v, %v; want a day after it finished", next, err)
	}
	if err := os.WriteFile(s.Path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := done.Add(time.Hour)
	if next, err := s.Next(now); err == nil || !next.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("Next over an unreadable file: %v, %v; want an error and a day from now", next, err)
	}
	if next, err := s.Next(now.Add(time.Minute)); err != nil || !next.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("Next after the unreadable file was replaced: %v, %v", next, err)
	}
}
