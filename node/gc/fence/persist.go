package fence

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// A member that restarts keeps what it told clients: the pending tells
// are saved to a file now and then (Save) and read back at start (Load).
// What was told after the last save before a crash is not kept.

// tell is one pending tell in the file.
type tell struct {
	Blob digest.Digest `json:"blob"`
	Repo string        `json:"repo"`
	At   time.Time     `json:"at"`
}

// Save writes the pending tells to path, atomically, if they changed
// since the last Save.
func (f *Fence) Save(path string) error {
	f.mu.Lock()
	if !f.tells.dirty {
		f.mu.Unlock()
		return nil
	}
	tells := f.tells.list()
	f.tells.dirty = false
	f.mu.Unlock()
	err := writeAtomic(path, tells)
	if err != nil {
		f.mu.Lock()
		f.tells.dirty = true
		f.mu.Unlock()
	}
	return err
}

func writeAtomic(path string, v any) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save fence: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = json.NewEncoder(tmp).Encode(v)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("save fence: %w", err)
	}
	return nil
}

// Load adds the tells saved at path; a missing file holds none.
func (f *Fence) Load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load fence: %w", err)
	}
	var tells []tell
	if err := json.Unmarshal(b, &tells); err != nil {
		return fmt.Errorf("load fence %s: %w", path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tells.merge(tells)
	return nil
}

// list returns the tells, for the file.
func (t *tells) list() []tell {
	var list []tell
	for d, m := range t.at {
		for repo, at := range m {
			list = append(list, tell{d, repo, at})
		}
	}
	return list
}

// merge adds the tells of the file, keeping the latest of each.
func (t *tells) merge(list []tell) {
	for _, l := range list {
		if l.Blob.Validate() != nil {
			continue
		}
		m := t.at[l.Blob]
		if m == nil {
			m = map[string]time.Time{}
			t.at[l.Blob] = m
		}
		if l.At.After(m[l.Repo]) {
			m[l.Repo] = l.At
		}
	}
}
