package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/metasync"
	"github.com/atollhq/atoll/node/policy"
)

// rules is the member's api.Policy: quotas and immutable tags, enforced
// the same on every member (package policy says how; quotas.go asks the
// member deciding each quota). It also answers the members' questions
// (serveClaim, serveQuotaReserve, serveQuotaSettle) and the usage report.
type rules struct {
	self      string
	meta      *metasync.Store
	views     *views        // the ring naming each tag's and quota's decider; empty on its own
	members   *memberClient // asks the deciders
	log       *slog.Logger
	quotas    *policy.Quotas
	immutable policy.Immutable
	pinner    *policy.Pinner
}

var _ api.Policy = (*rules)(nil)

// claimTimeout bounds a question to the member deciding a tag or a quota.
const claimTimeout = 10 * time.Second

func newRules(n *Node) (*rules, error) {
	q, err := policy.NewQuotas(n.cfg.Quotas, n.meta)
	if err != nil {
		return nil, err
	}
	im, err := policy.CompileImmutable(n.cfg.Immutable)
	if err != nil {
		return nil, err
	}
	return &rules{self: n.name, meta: n.meta, views: &n.views, members: n.members, log: n.log,
		quotas: q, immutable: im, pinner: policy.NewPinner(n.meta)}, nil
}

// decider names the member deciding key: its ring owner, or this member
// on its own.
func (p *rules) decider(key digest.Digest) string {
	if v := p.views.load(); v != nil {
		if owners := v.ring.Owners(key, 1); len(owners) > 0 {
			return owners[0]
		}
	}
	return p.self
}

// AllowBlob implements api.Policy.
func (p *rules) AllowBlob(ctx context.Context, repo string, d digest.Digest, size int64) (func(), error) {
	return p.admit(ctx, repo, d, size)
}

// AllowManifest implements api.Policy: an immutable tag is bound first,
// then the quotas are checked.
func (p *rules) AllowManifest(ctx context.Context, repo, tag string, d digest.Digest, size int64) (func(), error) {
	if tag != "" && p.immutable.Covers(repo, tag) {
		if err := p.bind(ctx, repo, tag, d); err != nil {
			return nil, err
		}
	}
	return p.admit(ctx, repo, d, size)
}

// AllowDelete implements api.Policy.
func (p *rules) AllowDelete(_ context.Context, repo, tag string, d digest.Digest) error {
	meta := p.meta
	if tag != "" {
		if cur, err := meta.Tag(repo, tag); err == nil && p.immutable.Covers(repo, tag) {
			return policy.Refused(repo, tag, cur)
		}
		return nil
	}
	tags, _ := meta.Tags(repo, "", 0)
	for _, t := range tags {
		if cur, err := meta.Tag(repo, t); err == nil && cur == d && p.immutable.Covers(repo, t) {
			return policy.Refused(repo, t, cur)
		}
	}
	return nil
}

// bind lets tag of repo point at d only if it is bound to d: by what this
// member knows, or else by the member deciding the tag.
func (p *rules) bind(ctx context.Context, repo, tag string, d digest.Digest) error {
	meta := p.meta
	if cur, ok := meta.Pinned(repo, tag); ok {
		return sameDigest(repo, tag, cur, d)
	}
	if cur, err := meta.Tag(repo, tag); err == nil && cur != d {
		return policy.Refused(repo, tag, cur)
	}
	bound, err := p.claim(ctx, repo, tag, d)
	if err != nil {
		return err
	}
	return sameDigest(repo, tag, bound, d)
}

func sameDigest(repo, tag string, bound, d digest.Digest) error {
	if bound != d {
		return policy.Refused(repo, tag, bound)
	}
	return nil
}

// claim asks the member the ring names for the tag (this one on its own)
// to bind it, and returns the digest it is bound to.
func (p *rules) claim(ctx context.Context, repo, tag string, d digest.Digest) (digest.Digest, error) {
	decider := p.decider(policy.TagKey(repo, tag))
	if decider == p.self {
		return p.pinner.Claim(ctx, repo, tag, d)
	}
	var reply claimReply
	if err := p.members.ask(ctx, decider, "/_atoll/v1/immutable/claim", claimTimeout, claimRequest{Repo: repo, Tag: tag, Digest: d}, &reply); err != nil {
		return "", fmt.Errorf("member %s deciding tag %s:%s: %w", decider, repo, tag, err)
	}
	return reply.Bound, nil
}

// claimRequest asks the deciding member to bind an immutable tag.
type claimRequest struct {
	Repo   string        `json:"repo"`
	Tag    string        `json:"tag"`
	Digest digest.Digest `json:"digest"`
}

// claimReply is the digest the tag is bound to.
type claimReply struct {
	Bound digest.Digest `json:"bound"`
}

// serveClaim answers POST /_atoll/v1/immutable/claim from a member.
func (p *rules) serveClaim(w http.ResponseWriter, r *http.Request) {
	var req claimRequest
	if !decodeRequest(w, r, &req) {
		return
	}
	if req.Digest.Validate() != nil {
		http.Error(w, "bad claim", http.StatusBadRequest)
		return
	}
	bound, err := p.pinner.Claim(r.Context(), req.Repo, req.Tag, req.Digest)
	if err != nil {
		p.log.Warn("binding an immutable tag", "repo", req.Repo, "tag", req.Tag, "err", err)
		http.Error(w, "cannot bind the tag now", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(claimReply{Bound: bound})
}

// serveUsage answers GET /_atoll/v1/usage: every quota and repository,
// bytes and counts, from the replicated metadata (the same on every
// member once it has caught up).
func (p *rules) serveUsage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p.quotas.Report(p.meta.Repositories("", 0)))
}
