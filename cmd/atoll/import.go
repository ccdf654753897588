package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/atollhq/atoll/node"
	"github.com/atollhq/atoll/node/registry2"
)

// importBeforeServing adopts a registry:2 tree at start: from (when set),
// or the member's own storage when it holds registry:2's layout (the data
// directory, or the bucket under storage.s3.rootdirectory). The member
// serves nothing until the import is done (a crash or a stop during it
// loses nothing: the next start goes on); a finished import is not run
// again. With noVerify the blobs are adopted without hashing and verified
// in the background once the member serves.
func importBeforeServing(ctx context.Context, n *node.Node, from string, noVerify bool, log *slog.Logger) error {
	pending, err := n.Registry2().Pending(ctx, from)
	if err != nil {
		return fmt.Errorf("registry:2 import: %w", err)
	}
	if !pending {
		return nil
	}
	src := from
	if src == "" {
		src = "the member's own storage"
	}
	log.Info("registry:2 data found: importing it before serving (docs: README, Coming from registry:2)", "source", src)
	rep, err := n.Registry2().Import(ctx, from, registry2.Options{NoVerify: noVerify})
	if err != nil {
		return fmt.Errorf("importing registry:2 data (start again to resume): %w", err)
	}
	logReport(log, rep)
	return nil
}

func logReport(log *slog.Logger, r registry2.Report) {
	log.Info("registry:2 import done", "source", r.Source, "dryRun", r.DryRun,
		"blobs", r.Blobs, "bytes", r.Bytes, "linked", r.Linked, "serverCopied", r.ServerCopied, "copied", r.Copied,
		"alreadyHeld", r.Held, "corrupt", r.Corrupt, "toVerify", r.Unverified, "repositories", r.Repositories, "manifests", r.Manifests, "tags", r.Tags,
		"layerLinks", r.Layers, "deletedManifests", r.Deleted, "deadTags", r.DeadTags,
		"unsupported", r.Unsupported, "uploadsDropped", r.Uploads, "took", r.Duration.Round(time.Millisecond))
}

// importCommand is `atoll import [--dry-run] [--no-verify] [--config FILE]
// [--data DIR] [SOURCE]`: the same import, offline (the registry stopped),
// SOURCE defaulting to the member's own storage (the data directory, or
// the bucket of storage.s3). With --dry-run it reports what it would do
// and writes nothing. With --no-verify the blobs are verified by the next
// `atoll serve`, in the background.
func importCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dryRun := fs.Bool("dry-run", false, "report what would be imported, change nothing")
	noVerify := fs.Bool("no-verify", false, "adopt blobs without hashing them; atoll serve verifies them in the background")
	configPath := fs.String("config", "", "the registry's config.yml (for its data directory)")
	data := fs.String("data", "", "atoll's data directory (default the config's, else ./data)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return errors.New("import: want at most one argument, the registry:2 directory")
	}
	fc, _, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	setIf(&fc.Storage.Filesystem.RootDirectory, *data)
	cfg, err := fc.nodeConfig()
	if err != nil {
		return err
	}
	cfg.Cluster.Enabled, cfg.Cluster.Join, cfg.Cluster.GossipAddr = false, nil, ""
	if cfg.DataDir == "" {
		cfg.DataDir = "data"
	}
	src := ""
	if len(pos) == 1 {
		src = pos[0]
	} else if cfg.Storage.S3 == nil {
		src = cfg.DataDir // fixed before a dry run swaps the data directory
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "metadata.db")); *dryRun && err != nil {
		// No atoll store there yet: a dry run must not create one.
		tmp, err := os.MkdirTemp("", "atoll-import-dry-run-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		cfg.DataDir = tmp
	}
	log := newLogger(stderr, fc.Log.Formatter, fc.Log.Level)
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	defer n.Close()
	if _, err := n.Registry2().Pending(ctx, src); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	rep, err := n.Registry2().Import(ctx, src, registry2.Options{DryRun: *dryRun, NoVerify: *noVerify, ProgressEvery: 2 * time.Second})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	printImport(stdout, rep)
	return nil
}

func printImport(w io.Writer, r registry2.Report) {
	if r.AlreadyDone {
		fmt.Fprintf(w, "%s was imported already\n", r.Source)
		return
	}
	verb := "imported"
	if r.DryRun {
		verb = "would import"
	}
	fmt.Fprintf(w, "%s from %s:\n", verb, r.Source)
	fmt.Fprintf(w, "  blobs         %d (%s): %d linked, %d copied server-side, %d copied (%s), %d held already, %d corrupt (left out)\n",
		r.Blobs, humanBytes(r.Bytes), r.Linked, r.ServerCopied, r.Copied, humanBytes(r.CopiedBytes), r.Held, r.Corrupt)
	if r.Unverified > 0 {
		fmt.Fprintf(w, "                %d adopted without hashing: atoll serve verifies them in the background\n", r.Unverified)
	}
	fmt.Fprintf(w, "  repositories  %d\n", r.Repositories)
	fmt.Fprintf(w, "  manifests     %d (%d deleted in registry:2 stay deleted, %d unsupported left out)\n", r.Manifests, r.Deleted, r.Unsupported)
	fmt.Fprintf(w, "  tags          %d (%d of deleted manifests left out)\n", r.Tags, r.DeadTags)
	fmt.Fprintf(w, "  layer links   %d\n", r.Layers)
	fmt.Fprintf(w, "  uploads       %d in progress dropped\n", r.Uploads)
	fmt.Fprintf(w, "  took          %s\n", r.Duration.Round(time.Millisecond))
}
