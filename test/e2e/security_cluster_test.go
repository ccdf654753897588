package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/node"
)

// secStartCluster is startLoopbackCluster whose members also read the
// config file conf (the later --config wins over the harness's empty one).
func secStartCluster(t *testing.T, size int, secret, conf string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, opts: clusterOptions{replicas: 2, secret: secret}, dir: t.TempDir()}
	for i := range size {
		name := fmt.Sprintf("n%d", i+1)
		m := &clusterMember{name: name, gossip: freeGossipAddr(t), grpc: freeLoopbackAddr(t), secret: secret}
		args := []string{"--config", conf, "--node-name", name, "--gossip-addr", m.gossip, "--grpc-addr", m.grpc,
			"--replicas", strconv.Itoa(c.opts.replicas), "--cluster-secret", secret}
		if i > 0 {
			args = append(args, "--join", c.members[0].gossip)
		}
		m.Node = startNodeWith(t, filepath.Join(c.dir, name), nodeOptions{
			addr: freeLoopbackAddr(t), args: args, env: []string{"ATOLL_CLUSTER_FAST=true"},
		})
		t.Cleanup(func() {
			if m.running() {
				m.Kill()
			}
		})
		c.members = append(c.members, m)
	}
	c.waitFormed()
	return c
}

// secIdentity encodes id as a member forwarding a request does.
func secIdentity(id auth.Identity) string {
	b, _ := json.Marshal(id)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestSecurityClusterAuth runs three members with htpasswd, access rules
// and a cluster secret. An upload started on one member and continued on
// others (round-robin DNS, a routing mesh) works for a user allowed to
// push and is refused to one who is not, on the member the client reached
// and again on the member holding the upload; an identity header without
// the cluster token is refused.
func TestSecurityClusterAuth(t *testing.T) {
	const secret = "security cluster secret"
	dir := t.TempDir()
	c := secStartCluster(t, 3, secret, secAccessFiles(t, dir))
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]

	// alice: POST on n1, PATCH on n2, PUT on n3, GET from each.
	blob := []byte("a layer pushed across three members")
	d := digest.FromBytes(blob)
	r := secDo(t, nil, "POST", n1.URL()+"/v2/team/rr/blobs/uploads/", secAlice, nil, nil)
	loc := r.header.Get("Location")
	if r.status != http.StatusAccepted || loc == "" {
		t.Fatalf("alice POST upload on n1: %d %s", r.status, r.body)
	}
	half := len(blob) / 2
	chunk := func(lo, hi int) http.Header {
		return http.Header{"Content-Type": {"application/octet-stream"}, "Content-Range": {fmt.Sprintf("%d-%d", lo, hi-1)}}
	}
	r = secDo(t, nil, "PATCH", n2.URL()+loc, secAlice, chunk(0, half), blob[:half])
	if r.status != http.StatusAccepted || r.header.Get("Range") != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("alice PATCH on n2 of n1's upload: %d Range %q %s", r.status, r.header.Get("Range"), r.body)
	}
	if l := r.header.Get("Location"); l != "" {
		loc = l
	}

	// bob may pull team/** but not push: refused on the member he reaches.
	for _, m := range []*clusterMember{n2, n3} {
		r = secDo(t, nil, "PATCH", m.URL()+loc, secBob, chunk(half, len(blob)), blob[half:])
		secExpectError(t, "bob PATCH on "+m.name+" of alice's upload", r, http.StatusForbidden, "DENIED")
		r = secDo(t, nil, "PUT", m.URL()+withDigest(loc, d), secBob, chunk(half, len(blob)), blob[half:])
		secExpectError(t, "bob PUT on "+m.name+" of alice's upload", r, http.StatusForbidden, "DENIED")
	}
	// A member vouching for bob (it has the cluster token) is refused by
	// the member holding the upload, which checks the identity again.
	vouched := http.Header{"Atoll-Cluster-Token": {node.HTTPToken(secret)}, "Atoll-Identity": {secIdentity(auth.Identity{User: "bob"})}}
	for k, v := range chunk(half, len(blob)) {
		vouched[k] = v
	}
	r = secDo(t, nil, "PATCH", n1.URL()+loc, secAnonymous, vouched, blob[half:])
	secExpectError(t, "PATCH forwarded for bob to the holder", r, http.StatusForbidden, "DENIED")
	// The same vouching for alice is served: the refusal above is bob's.
	asAlice := http.Header{"Atoll-Cluster-Token": vouched["Atoll-Cluster-Token"], "Atoll-Identity": {secIdentity(auth.Identity{User: "alice"})}}
	if r = secDo(t, nil, "GET", n1.URL()+loc, secAnonymous, asAlice, nil); r.status != http.StatusNoContent {
		t.Errorf("upload status forwarded for alice to the holder: %d %s", r.status, r.body)
	}
	// An identity header without the cluster token, or with a wrong one,
	// is refused whoever it names, with or without credentials.
	for _, h := range []http.Header{
		{"Atoll-Identity": {secIdentity(auth.Identity{User: "alice"})}},
		{"Atoll-Identity": {secIdentity(auth.Identity{User: "alice"})}, "Atoll-Cluster-Token": {"wrong"}},
		{"Atoll-Identity": {secIdentity(auth.Identity{User: "alice"})}, "Atoll-Cluster-Token": {node.HTTPToken("another secret")}},
		{"Atoll-Identity": {"not base64 json"}, "Atoll-Cluster-Token": {node.HTTPToken(secret)}},
	} {
		for _, u := range []secUser{secAnonymous, secBob} {
			r = secDo(t, nil, "PATCH", n1.URL()+loc, u, h, blob[half:])
			what := fmt.Sprintf("PATCH as %q with forged identity headers %v", u.name, h)
			secExpectError(t, what, r, http.StatusUnauthorized, "UNAUTHORIZED")
		}
	}
	// Members' own endpoints want the cluster token, or an administrator
	// (alice is none under these rules: 403).
	for _, h := range []http.Header{nil, {"Atoll-Cluster-Token": {"wrong"}}, {"Atoll-Cluster-Token": {node.HTTPToken("another secret")}}} {
		for u, want := range map[secUser]int{secAnonymous: http.StatusUnauthorized, secAlice: http.StatusForbidden} {
			r = secDo(t, nil, "POST", n2.URL()+"/_atoll/v1/gc?grace=0s&dry-run=true", u, h, nil)
			if r.status != want {
				t.Errorf("POST /_atoll/v1/gc as %q with token %q: %d %s, want %d", u.name, h.Get("Atoll-Cluster-Token"), r.status, r.body, want)
			}
		}
	}

	// Nothing of the refused requests reached the upload.
	r = secDo(t, nil, "GET", n3.URL()+loc, secAlice, nil, nil)
	if r.status != http.StatusNoContent || r.header.Get("Range") != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("upload status on n3 after the refused requests: %d Range %q %s", r.status, r.header.Get("Range"), r.body)
	}

	r = secDo(t, nil, "PUT", n3.URL()+withDigest(loc, d), secAlice, chunk(half, len(blob)), blob[half:])
	if r.status != http.StatusCreated {
		t.Fatalf("alice PUT on n3 of n1's upload: %d %s", r.status, r.body)
	}
	for _, m := range c.members {
		r = secDo(t, nil, "GET", m.URL()+"/v2/team/rr/blobs/"+d.String(), secBob, nil, nil)
		if r.status != http.StatusOK || digest.FromBytes(r.body) != d {
			t.Errorf("bob GET of the blob on %s: %d, %d bytes", m.name, r.status, len(r.body))
		}
		r = secDo(t, nil, "GET", m.URL()+"/v2/team/rr/blobs/"+d.String(), secAnonymous, nil, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("anonymous GET of the team blob on %s: %d, want 401 (anonymous clients may pull public/** only)", m.name, r.status)
		}
	}

	// go-containerregistry through a round-robin balancer, a new
	// connection (so, a member in turn) for every request.
	lb := startBalancer(t, []string{n1.Addr(), n2.Addr(), n3.Addr()})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	img := secImage(t)
	ref := secRef(t, lb.Addr(), "team/mesh:v1", false)
	if err := remote.Write(ref, img, secRemote(secAlice, tr)...); err != nil {
		t.Fatalf("alice pushes through the balancer: %v", err)
	}
	if err := secPull(ref, img, secRemote(secBob, tr)); err != nil {
		t.Fatalf("bob pulls through the balancer: %v", err)
	}
	if err := remote.Write(secRef(t, lb.Addr(), "team/mesh:bob", false), secImage(t), secRemote(secBob, tr)...); secStatus(err) != http.StatusForbidden {
		t.Errorf("bob pushes through the balancer: %v, want 403", err)
	}
	perBackend, _ := lb.connections(0)
	t.Logf("connections per member through the balancer: %v", perBackend)
}

// TestSecurityClusterAuthNeedsSecret starts a cluster member with
// authentication and no cluster secret: it refuses to run, since members
// vouch for their clients with the secret.
func TestSecurityClusterAuthNeedsSecret(t *testing.T) {
	dir := t.TempDir()
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), secAlice)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, atollBin, "serve", "--config", emptyConf, "--addr", freeLoopbackAddr(t),
		"--data", filepath.Join(dir, "data"), "--node-name", "n1", "--gossip-addr", freeGossipAddr(t), "--grpc-addr", freeLoopbackAddr(t))
	cmd.Env = append(cleanEnv(), "REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH="+htpasswd)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "cluster secret") {
		t.Fatalf("cluster member with htpasswd and no secret: %v (context %v)\n%s", err, ctx.Err(), out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
}
