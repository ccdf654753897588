package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/placement"
	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/node/scrub"
	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
)

// blobCopier fetches blobs from the other members into this one's store:
// the good copy that replaces a bad one a scrub moved aside.
type blobCopier struct {
	self    string
	local   placement.LocalStore
	views   *views
	members *memberClient
	// idle is how long a copy from another member may go without a byte
	// (a member frozen or cut off) before it is given up for the next one.
	idle time.Duration
}

// copyHere stores blob d here from the first other member, in the
// ring's order of preference, that holds a copy matching d (the copy is
// verified on arrival, so a member's bad copy is passed over). It wraps
// scrub.ErrNoGoodCopy when every live member answered that it has none
// and no member is down.
func (c *blobCopier) copyHere(ctx context.Context, d digest.Digest) (from string, err error) {
	v := c.views.load()
	if v == nil {
		return "", errors.New("not a member of a cluster yet")
	}
	to := placement.NewPeerBlobs(c.self, c.local)
	var failed []string
	none := true // every member asked has no good copy
	for _, m := range v.preference(d) {
		if m == c.self {
			continue
		}
		err := c.copyFrom(ctx, m, d, to)
		if err == nil {
			return m, nil
		}
		if errors.Is(err, storage.ErrNoSpace) { // here: no other member's copy fits either
			return "", fmt.Errorf("storing the copy from %s here: %w", m, err)
		}
		failed = append(failed, fmt.Sprintf("%s: %v", m, err))
		none = none && (errors.Is(err, errHoldsNone) || errors.Is(err, storage.ErrDigestMismatch))
	}
	return "", noneFound(v, failed, none)
}

// noneFound is the error of a search of the other members of view v for
// a good copy that found none: failed says what each member asked
// answered, none whether every one answered that it has no good copy. A
// member held dead may be one restarting with a good copy: the copy is
// lost (scrub.ErrNoGoodCopy) only once it is back and has none, or has
// left (a member leaving hands its blobs off) or been forgotten.
func noneFound(v *view, failed []string, none bool) error {
	for _, m := range slices.Sorted(maps.Keys(v.members)) {
		if v.members[m].State == peer.StateDead {
			failed = append(failed, m+": down, and may hold one")
			none = false
		}
	}
	if len(failed) == 0 {
		return fmt.Errorf("no other member is live: %w", storage.ErrUnavailable)
	}
	err := errors.New(strings.Join(failed, "; "))
	if none {
		return fmt.Errorf("%w: %w", scrub.ErrNoGoodCopy, err)
	}
	return err
}

var errHoldsNone = errors.New("holds no copy")

// copyFrom stores blob d here through to from member m. A copy that
// sends nothing for c.idle is given up.
func (c *blobCopier) copyFrom(ctx context.Context, m string, d digest.Digest, to placement.PeerBlobs) error {
	w := watchIdle(ctx, "", c.idle)
	return w.end(c.copyWatched(w, m, d, to))
}

func (c *blobCopier) copyWatched(w *idleWatch, m string, d digest.Digest, to placement.PeerBlobs) error {
	req, err := c.members.newRequest(w.ctx, http.MethodGet, m, route.BlobPath+d.String(), nil)
	if err != nil {
		return err
	}
	resp, err := c.members.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return errHoldsNone
	default:
		return fmt.Errorf("answered %s", resp.Status)
	}
	body := readerFunc(func(p []byte) (int, error) {
		w.kick()
		return resp.Body.Read(p)
	})
	err = to.Put(w.ctx, d, resp.ContentLength, body)
	if errors.Is(err, storage.ErrDigestMismatch) {
		return fmt.Errorf("its copy is bad too: %w", err)
	}
	return err
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
