package peer

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// memberlistLogger routes memberlist's own log lines to log at debug level.
// memberlist prefixes each line with its level ("[WARN] memberlist: ...");
// that prefix becomes the attribute "memberlist_level".
func memberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l}, "", 0)
}

type slogWriter struct{ log *slog.Logger }

// Write logs one line; log.Logger calls it once per line.
func (w slogWriter) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	line := bytes.TrimSpace(p)
	level := ""
	if len(line) > 0 && line[0] == '[' {
		if i := bytes.IndexByte(line, ']'); i > 0 {
			level, line = string(line[1:i]), bytes.TrimSpace(line[i+1:])
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.log.Debug(string(line), "memberlist_level", level)
	return len(p), nil
}
