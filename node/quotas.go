package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/policy"
)

// Quota admissions in a cluster: each quota is decided by the ring owner
// of its name (policy/reserve.go states the invariant). A member writing
// into a quota's repositories asks that member to reserve the room
// (POST /_atoll/v1/quota/reserve, with the cluster token), writes, and
// tells it how the write ended (POST /_atoll/v1/quota/settle). A member
// that decides a quota itself asks nobody: one node costs no round trip.

// quotaSettleTimeout bounds the report of a write's outcome, sent after
// the client has its answer.
const quotaSettleTimeout = 10 * time.Second

// heldQuota is room reserved for one write in one quota.
type heldQuota struct {
	decider string // the member holding the reservation
	quota   string
	id      uint64
}

// admit reserves room for d (size bytes) in every quota matching repo, in
// their order, each from the member deciding it. On success release
// reports the write's outcome to each: stored when repo links d here once
// the write is done (metadata is applied here before a write returns).
func (p *rules) admit(ctx context.Context, repo string, d digest.Digest, size int64) (release func(), err error) {
	names := p.quotas.Names(repo)
	if len(names) == 0 {
		return func() {}, nil
	}
	held := make([]heldQuota, 0, len(names))
	settle := func(stored bool) {
		for _, h := range held {
			p.settle(h, stored)
		}
	}
	for _, name := range names {
		h, err := p.reserve(ctx, name, repo, d, size)
		if err != nil {
			settle(false)
			return nil, err
		}
		held = append(held, h)
	}
	return func() {
		settle(p.meta.Holds(func(r string) bool { return r == repo }, d))
	}, nil
}

// reserve asks the member deciding quota for room.
func (p *rules) reserve(ctx context.Context, quota, repo string, d digest.Digest, size int64) (heldQuota, error) {
	h := heldQuota{decider: p.decider(digest.FromString("quota/" + quota)), quota: quota}
	if h.decider == p.self {
		id, err := p.quotas.Reserve(quota, repo, d, size)
		h.id = id
		return h, err
	}
	var reply reserveReply
	err := p.members.ask(ctx, h.decider, "/_atoll/v1/quota/reserve", claimTimeout, reserveRequest{Quota: quota, Repo: repo, Digest: d, Size: size}, &reply)
	if err != nil {
		return h, fmt.Errorf("member %s deciding quota %q: %w", h.decider, quota, err)
	}
	if reply.Refused != "" {
		return h, &policy.Refusal{Reason: reply.Refused}
	}
	h.id = reply.ID
	return h, nil
}

// settle reports a write's outcome to the member holding h: here at once,
// to another member in the background (the client need not wait; until
// the report arrives the room stays held, which errs on the safe side).
func (p *rules) settle(h heldQuota, stored bool) {
	if h.decider == p.self {
		p.quotas.Settle(h.quota, h.id, stored)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), quotaSettleTimeout)
		defer cancel()
		req := settleRequest{Quota: h.quota, ID: h.id, Stored: stored}
		if err := p.members.ask(ctx, h.decider, "/_atoll/v1/quota/settle", claimTimeout, req, nil); err != nil {
			p.log.Warn("reporting a write to the member deciding its quota; it holds the room until its hold ends",
				"quota", h.quota, "member", h.decider, "stored", stored, "err", err)
		}
	}()
}

// reserveRequest asks the deciding member for room in a quota.
type reserveRequest struct {
	Quota  string        `json:"quota"`
	Repo   string        `json:"repo"`
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// reserveReply is the reservation's id, or why the quota refuses.
type reserveReply struct {
	ID      uint64 `json:"id,omitempty"`
	Refused string `json:"refused,omitempty"`
}

// settleRequest reports how a write with a reservation ended.
type settleRequest struct {
	Quota  string `json:"quota"`
	ID     uint64 `json:"id"`
	Stored bool   `json:"stored"`
}

// serveQuotaReserve answers POST /_atoll/v1/quota/reserve from a member.
func (p *rules) serveQuotaReserve(w http.ResponseWriter, r *http.Request) {
	var req reserveRequest
	if !decodeRequest(w, r, &req) {
		return
	}
	if req.Digest.Validate() != nil || req.Size < 0 {
		http.Error(w, "bad reservation", http.StatusBadRequest)
		return
	}
	var reply reserveReply
	id, err := p.quotas.Reserve(req.Quota, req.Repo, req.Digest, req.Size)
	var refusal *policy.Refusal
	switch {
	case errors.As(err, &refusal):
		reply.Refused = refusal.Reason
	case err != nil:
		p.log.Warn("deciding a quota", "quota", req.Quota, "err", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	default:
		reply.ID = id
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

// serveQuotaSettle answers POST /_atoll/v1/quota/settle from a member.
func (p *rules) serveQuotaSettle(w http.ResponseWriter, r *http.Request) {
	var req settleRequest
	if !decodeRequest(w, r, &req) {
		return
	}
	p.quotas.Settle(req.Quota, req.ID, req.Stored)
	w.WriteHeader(http.StatusOK)
}

// decodeRequest decodes a member's JSON request body into req; else it
// answers and returns false.
func decodeRequest(w http.ResponseWriter, r *http.Request, req any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}
