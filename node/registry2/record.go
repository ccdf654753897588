package registry2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Record keeps the record of a finished import, where the data it
// describes lives: a file in the data directory for a directory source, an
// object of the bucket for a bucket source (so a member that joins later
// on the same bucket does not import again, bringing back what was
// deleted since).
type Record interface {
	// Load returns the record; an error wrapping fs.ErrNotExist when none
	// was saved.
	Load(ctx context.Context) ([]byte, error)
	// Save stores b durably, whole or not at all.
	Save(ctx context.Context, b []byte) error
}

// FileRecord is a record in the file at path.
func FileRecord(path string) Record { return fileRecord(path) }

type fileRecord string

func (f fileRecord) Load(context.Context) ([]byte, error) { return os.ReadFile(string(f)) }

// Save writes a temporary file, fsyncs it and renames it over the record.
func (f fileRecord) Save(_ context.Context, b []byte) error {
	path := string(f)
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

// Recorder is a store that keeps named records (s3.Store).
type Recorder interface {
	PutRecord(ctx context.Context, name string, b []byte) error
	Record(ctx context.Context, name string) ([]byte, error)
}

// StoreRecord is the record name kept by r.
func StoreRecord(r Recorder, name string) Record { return storeRecord{r, name} }

type storeRecord struct {
	r    Recorder
	name string
}

func (s storeRecord) Load(ctx context.Context) ([]byte, error) { return s.r.Record(ctx, s.name) }
func (s storeRecord) Save(ctx context.Context, b []byte) error { return s.r.PutRecord(ctx, s.name, b) }

// marker is the record of a finished import.
type marker struct {
	Source   string    `json:"source"`
	Finished time.Time `json:"finished"`
	Report   Report    `json:"report"`
}

// Done reports whether rec records a finished import of src. A record that
// cannot be read (a bucket out of reach) is an error, not a "no".
func Done(ctx context.Context, rec Record, src Source) (bool, error) {
	if rec == nil {
		return false, nil
	}
	b, err := rec.Load(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("import record: %w", err)
	}
	var m marker
	if json.Unmarshal(b, &m) != nil {
		return false, nil
	}
	return m.Source == src.String(), nil
}

// markDone records the finished import.
func markDone(ctx context.Context, rec Record, rep Report) error {
	if rec == nil {
		return nil
	}
	b, err := json.MarshalIndent(marker{Source: rep.Source, Finished: time.Now().UTC(), Report: rep}, "", "  ")
	if err != nil {
		return err
	}
	if err := rec.Save(ctx, append(b, '\n')); err != nil {
		return fmt.Errorf("import: recording: %w", err)
	}
	return nil
}
