package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atollhq/atoll/node"
	"github.com/atollhq/atoll/node/scrub"
	"github.com/atollhq/atoll/storage/diskspace"
)

// scrubCommand asks a running member to read back every blob on every
// member and check it against its digest (package node/scrub). Progress
// goes to stderr, each member's report to stdout. It fails when a member
// could not finish, or when a bad copy could not be replaced by a good one.
func scrubCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("scrub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://127.0.0.1:5000", "URL of any member")
	rate := fs.String("rate", "", "read at most this many bytes a second on each member, such as 100MiB (default: as fast as the disk)")
	local := fs.Bool("local", false, "scrub the member at --addr only")
	var af adminFlags
	af.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{}
	if *rate != "" {
		n, err := diskspace.ParseSize(*rate)
		if err != nil || n <= 0 {
			return fmt.Errorf("--rate %q: want bytes a second, such as 100MiB", *rate)
		}
		q.Set("rate", fmt.Sprint(n))
	}
	if *local {
		q.Set("scope", "local")
	}
	base := baseURL(*addr)
	what := "every member, through " + base
	if *local {
		what = base
	}
	fmt.Fprintf(stdout, "scrubbing the blobs and manifest records of %s ...\n", what)
	resp, err := af.call(ctx, http.MethodPost, base, "/_atoll/v1/scrub?"+q.Encode(), stderr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var failed, lost, lostRecords, unrepaired, unmended []string
	dec := json.NewDecoder(resp.Body)
	for {
		var l node.ScrubLine
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("reading reports: %w", err)
		}
		switch {
		case l.Progress != nil:
			p := l.Progress
			done := fmt.Sprintf("%d blobs, %s", p.Checked, humanBytes(p.Bytes))
			if p.Blobs > 0 {
				done = fmt.Sprintf("%d of %d blobs, %s of %s", p.Checked, p.Blobs, humanBytes(p.Bytes), humanBytes(p.TotalBytes))
			}
			fmt.Fprintf(stderr, "  %s: %s, %d bad, %s\n", p.Member, done, p.Bad, p.Elapsed.Round(time.Second))
		case l.Report != nil:
			r := *l.Report
			printScrubReport(stdout, r)
			if r.Error != "" {
				failed = append(failed, r.Member)
			}
			for _, b := range r.Bad {
				switch {
				case b.Lost && b.Manifest:
					lostRecords = append(lostRecords, r.Member+": "+b.Digest.String())
				case b.Lost:
					lost = append(lost, r.Member+": "+b.Digest.String())
				case !b.Repaired && b.Manifest:
					unmended = append(unmended, r.Member+": "+b.Digest.String())
				case !b.Repaired:
					unrepaired = append(unrepaired, r.Member+": "+b.Digest.String())
				}
			}
		}
	}
	switch {
	case len(failed) > 0:
		return fmt.Errorf("the scrub did not finish on %s", strings.Join(failed, ", "))
	case len(lost) > 0:
		return fmt.Errorf("%d bad copies have no good copy anywhere: push the images of the repositories listed again"+
			" (docker push uploads the layers the registry lacks; a client that skips an image whose manifest the registry has, such as crane, needs the manifest deleted first)", len(lost))
	case len(lostRecords) > 0:
		return fmt.Errorf("%d bad manifest records have no good copy anywhere: they answer unknown; push the images of the repositories listed again, which writes them anew", len(lostRecords))
	case len(unmended) > 0:
		return fmt.Errorf("%d bad manifest records could not be replaced yet (see why above): they answer unknown until a scrub, once the members holding good ones answer, or a push of the image replaces them", len(unmended))
	case len(unrepaired) > 0:
		return fmt.Errorf("%d bad copies could not be replaced yet (see why above): each member fetches its own again every minute until a member holding a good copy answers (metric atoll_scrub_refetch_waiting)", len(unrepaired))
	}
	return nil
}

func printScrubReport(w io.Writer, r scrub.Report) {
	if r.Error != "" {
		fmt.Fprintf(w, "  %-20s failed after %d blobs: %s\n", r.Member, r.Checked, r.Error)
	} else {
		fmt.Fprintf(w, "  %-20s checked %d blobs (%s) and %d manifest records in %s, %d bad\n", r.Member, r.Checked, humanBytes(r.Bytes), r.Manifests, r.Duration.Round(time.Millisecond), len(r.Bad))
	}
	for _, b := range r.Bad {
		if b.Manifest {
			printBadRecord(w, b)
			continue
		}
		fmt.Fprintf(w, "    %s (%s): %s\n", b.Digest, humanBytes(b.Size), b.Problem)
		switch {
		case b.Repaired:
			fmt.Fprintf(w, "      replaced by a good copy from %s; the bad one is in %s\n", cmp.Or(b.From, "another member"), b.Quarantined)
		case b.Lost && b.Quarantined != "":
			fmt.Fprintf(w, "      LOST: moved to %s (%s); linked by %s\n", b.Quarantined, b.Error, strings.Join(orNone(b.Repositories), ", "))
		case b.Lost:
			fmt.Fprintf(w, "      LOST: %s; linked by %s\n", b.Error, strings.Join(orNone(b.Repositories), ", "))
		default:
			fmt.Fprintf(w, "      NOT REPLACED YET: moved to %s; %s\n", b.Quarantined, b.Error)
		}
	}
}

func printBadRecord(w io.Writer, b scrub.Bad) {
	fmt.Fprintf(w, "    manifest record %s: %s\n", b.Digest, b.Problem)
	switch {
	case b.Repaired:
		fmt.Fprintf(w, "      replaced by the good record of %s\n", cmp.Or(b.From, "another member"))
	case b.Lost:
		fmt.Fprintf(w, "      LOST: %s; linked by %s\n", b.Error, strings.Join(orNone(b.Repositories), ", "))
	default:
		fmt.Fprintf(w, "      NOT REPLACED YET: %s; linked by %s\n", b.Error, strings.Join(orNone(b.Repositories), ", "))
	}
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"no repository"}
	}
	return s
}
