// Package diskspace is what atoll knows about the free space of the disk
// under its data directory: how much is free (Stat), whether an error means
// the disk is full (Classify), how low free space may go before the member
// stops calling itself ready (Floor), and how to hold space for later
// (Preallocate).
package diskspace

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"github.com/atollhq/atoll/storage"
)

// Space is the size of a filesystem and what an unprivileged writer may
// still use of it.
type Space struct {
	Free  uint64 // bytes available to atoll
	Total uint64 // bytes in the filesystem
}

// Classify wraps err with storage.ErrNoSpace when it says the disk or a
// quota is full (ENOSPC, EDQUOT), so callers test errors.Is(err,
// storage.ErrNoSpace) and still see the cause. Other errors, and nil, are
// returned unchanged.
func Classify(err error) error {
	if err == nil || errors.Is(err, storage.ErrNoSpace) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || isQuota(err) {
		return fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
	}
	return err
}

// Floor is the least free space a member wants on its data disk: a byte
// count, or a percentage of the filesystem. The zero Floor is the default:
// 1 GiB or 5 % of the filesystem, whichever is smaller.
type Floor struct {
	set     bool
	bytes   uint64
	percent float64
}

// DefaultFloorBytes and DefaultFloorPercent make the zero Floor.
const (
	DefaultFloorBytes   = 1 << 30
	DefaultFloorPercent = 5.0
)

// ParseFloor reads "1GiB", "500MiB", "1073741824", "5%" or "0" (no
// floor). Units are KiB, MiB, GiB, TiB (powers of 1024), KB, MB, GB, TB
// (powers of 1000) and B.
func ParseFloor(s string) (Floor, error) {
	s = strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
			return Floor{}, fmt.Errorf("free space floor %q: want a percentage from 0%% to 100%%", s)
		}
		return Floor{set: true, percent: p}, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return Floor{}, fmt.Errorf("free space floor: %w", err)
	}
	return Floor{set: true, bytes: uint64(n)}, nil
}

// ParseSize reads a byte count such as 512MiB, 10GiB or 1073741824.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || n < 0 || n*u.mult >= math.MaxInt64 {
				return 0, fmt.Errorf("size %q", s)
			}
			return int64(n * u.mult), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB, GiB, TiB", s)
	}
	return n, nil
}

// Of is the floor in bytes on a filesystem of total bytes.
func (f Floor) Of(total uint64) uint64 {
	if !f.set {
		return min(DefaultFloorBytes, uint64(float64(total)*DefaultFloorPercent/100))
	}
	if f.percent > 0 {
		return uint64(float64(total) * f.percent / 100)
	}
	return f.bytes
}

// String is the floor as ParseFloor reads it.
func (f Floor) String() string {
	switch {
	case !f.set:
		return "1GiB or 5%"
	case f.percent > 0:
		return strconv.FormatFloat(f.percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatUint(f.bytes, 10)
}

// UnmarshalText implements encoding.TextUnmarshaler, so a YAML string
// configures a Floor.
func (f *Floor) UnmarshalText(b []byte) error {
	v, err := ParseFloor(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Below reports whether s has less free space than the floor, and says so
// in words when it has.
func (f Floor) Below(s Space) (string, bool) {
	floor := f.Of(s.Total)
	if s.Free >= floor {
		return "", false
	}
	return fmt.Sprintf("%s free of %s, below the floor of %s (storage.filesystem.minfree)",
		Bytes(s.Free), Bytes(s.Total), Bytes(floor)), true
}

// Bytes formats n with a binary unit, e.g. "3.2MiB".
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTP"[exp])
}
