package node

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
)

// backupPath serves a copy of the member's metadata.db (atoll backup).
const backupPath = "/_atoll/v1/metadata/backup"

// backupper copies the metadata database: storage/metadb's Store.
type backupper interface {
	Backup(w io.Writer, size func(int64)) (int64, error)
}

// serveBackup streams a copy of this member's metadata.db as of one commit,
// taken while the member serves: in a cluster every member's holds the
// whole registry's metadata. A copy cut short (the client went away, the
// disk failed) ends the connection before its declared length, so the
// client cannot take it for whole.
//
// A member still catching up with the cluster's metadata holds only part
// of it: it answers 503, so no one takes its copy for the whole.
func serveBackup(db backupper, caughtUp func() bool, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !caughtUp() {
			w.Header().Set("Retry-After", "5")
			api.WriteError(log, w, r, fmt.Errorf("this member is catching up with the cluster's metadata: back up another member, or try again: %w", storage.ErrUnavailable))
			return
		}
		began := false
		n, err := db.Backup(w, func(size int64) {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", strconv.FormatInt(size, 10))
			h.Set("Content-Disposition", `attachment; filename="metadata.db"`)
			began = true
		})
		switch {
		case err != nil && !began:
			api.WriteError(log, w, r, err)
		case err != nil:
			log.Warn("metadata backup cut short", "bytes", n, "remote", r.RemoteAddr, "err", err)
		default:
			log.Info("metadata backup sent", "bytes", n, "remote", r.RemoteAddr)
		}
	}
}
