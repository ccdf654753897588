package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// secAccessConfig is a registry:2 config file with atoll's access rules:
// alice owns team/**, bob may pull it, publisher owns public/**, anonymous
// clients may pull public/**.
const secAccessConfig = `version: 0.1
auth:
  htpasswd:
    realm: atoll-access
    path: %q
  access:
    rules:
      - repositories: ["public/**"]
        users: [anonymous]
        actions: [pull]
      - repositories: ["team/**"]
        users: [alice]
        actions: [pull, push, delete]
      - repositories: ["team/**"]
        users: [bob]
        actions: [pull]
      - repositories: ["public/**"]
        users: [publisher]
        actions: ["*"]
`

// secAccessFiles writes the htpasswd file of alice, bob and publisher and
// the config file of secAccessConfig into dir and returns the config's path.
func secAccessFiles(t *testing.T, dir string) string {
	t.Helper()
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), secAlice, secBob, secPublisher)
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, secAccessConfig, htpasswd), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// secCatalog returns the repositories u sees in the catalog.
func secCatalog(t *testing.T, base string, u secUser) []string {
	t.Helper()
	r := secDo(t, nil, "GET", base+"/v2/_catalog", u, nil, nil)
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &c) != nil {
		t.Fatalf("catalog as %q: %d %s", u.name, r.status, r.body)
	}
	return c.Repositories
}

// TestSecurityAccessRules runs a member with access rules from a config
// file and checks who may push, pull, delete and list what.
func TestSecurityAccessRules(t *testing.T) {
	dir := t.TempDir()
	conf := secAccessFiles(t, dir)
	// The later --config wins over the harness's empty one.
	n := startNodeWith(t, filepath.Join(dir, "data"), nodeOptions{args: []string{"--config", conf}})
	host := n.Addr()

	team, lib, public := secImage(t), secImage(t), secImage(t)
	if err := remote.Write(secRef(t, host, "team/app:v1", false), team, secRemote(secAlice, nil)...); err != nil {
		t.Fatalf("alice pushes team/app: %v", err)
	}
	if err := remote.Write(secRef(t, host, "team/lib:v1", false), lib, secRemote(secAlice, nil)...); err != nil {
		t.Fatalf("alice pushes team/lib: %v", err)
	}
	if err := remote.Write(secRef(t, host, "public/app:v1", false), public, secRemote(secPublisher, nil)...); err != nil {
		t.Fatalf("publisher pushes public/app: %v", err)
	}

	// bob may pull team/** and nothing else.
	if err := secPull(secRef(t, host, "team/app:v1", false), team, secRemote(secBob, nil)); err != nil {
		t.Errorf("bob pulls team/app: %v", err)
	}
	if err := remote.Write(secRef(t, host, "team/app:bob", false), secImage(t), secRemote(secBob, nil)...); secStatus(err) != http.StatusForbidden {
		t.Errorf("bob pushes team/app: %v, want 403", err)
	}
	if err := remote.Write(secRef(t, host, "team/new:v1", false), secImage(t), secRemote(secBob, nil)...); secStatus(err) != http.StatusForbidden {
		t.Errorf("bob pushes a new team repository: %v, want 403", err)
	}
	r := secDo(t, nil, "POST", n.URL()+"/v2/team/app/blobs/uploads/", secBob, nil, nil)
	secExpectError(t, "bob POST upload to team/app", r, http.StatusForbidden, "DENIED")
	teamDigest, _ := team.Digest()
	r = secDo(t, nil, "DELETE", n.URL()+"/v2/team/app/manifests/"+teamDigest.String(), secBob, nil, nil)
	secExpectError(t, "bob DELETE team/app manifest", r, http.StatusForbidden, "DENIED")
	r = secDo(t, nil, "GET", n.URL()+"/v2/public/app/tags/list", secBob, nil, nil)
	secExpectError(t, "bob lists public/app tags", r, http.StatusForbidden, "DENIED")

	// alice may not touch public/**; publisher may not read team/**.
	if err := remote.Write(secRef(t, host, "public/app:alice", false), secImage(t), secRemote(secAlice, nil)...); secStatus(err) != http.StatusForbidden {
		t.Errorf("alice pushes public/app: %v, want 403", err)
	}
	if err := secPull(secRef(t, host, "team/app:v1", false), team, secRemote(secPublisher, nil)); secStatus(err) != http.StatusForbidden {
		t.Errorf("publisher pulls team/app: %v, want 403", err)
	}
	// A mount from a repository publisher may not pull gets a plain upload
	// session (202), never the blob (201), and reveals nothing.
	layers, _ := team.Layers()
	ld, _ := layers[0].Digest()
	r = secDo(t, nil, "POST", n.URL()+"/v2/public/app/blobs/uploads/?mount="+ld.String()+"&from=team/app", secPublisher, nil, nil)
	if r.status != http.StatusAccepted {
		t.Errorf("publisher mounts a team/app blob: %d %s, want 202 (an upload, not the blob)", r.status, r.body)
	}
	r = secDo(t, nil, "GET", n.URL()+"/v2/public/app/blobs/"+ld.String(), secPublisher, nil, nil)
	secExpectError(t, "publisher reads the team blob through public/app", r, http.StatusNotFound, "BLOB_UNKNOWN")

	t.Run("anonymous mount of a blob the user may not pull", func(t *testing.T) {
		r := secDo(t, nil, "POST", n.URL()+"/v2/public/leak/blobs/uploads/?mount="+ld.String(), secPublisher, nil, nil)
		if r.status != http.StatusAccepted {
			t.Errorf("publisher mounts a team/app blob without from: %d %s, want 202 (an upload, not the blob)", r.status, r.body)
		}
		r = secDo(t, nil, "GET", n.URL()+"/v2/public/leak/blobs/"+ld.String(), secPublisher, nil, nil)
		secExpectError(t, "publisher reads the team blob through public/leak", r, http.StatusNotFound, "BLOB_UNKNOWN")
	})

	// alice may delete in team/**.
	r = secDo(t, nil, "DELETE", n.URL()+"/v2/team/lib/manifests/v1", secAlice, nil, nil)
	if r.status != http.StatusAccepted {
		t.Errorf("alice deletes the tag team/lib:v1: %d %s", r.status, r.body)
	}

	// Anonymous clients pull public/**.
	if err := secPull(secRef(t, host, "public/app:v1", false), public, secRemote(secAnonymous, nil)); err != nil {
		t.Errorf("anonymous pull of public/app: %v", err)
	}
	if err := remote.Write(secRef(t, host, "public/app:anon", false), secImage(t), secRemote(secAnonymous, nil)...); secStatus(err) != http.StatusUnauthorized {
		t.Errorf("anonymous push to public/app: %v, want 401", err)
	}

	// Each user's catalog lists what that user may pull.
	for _, c := range []struct {
		u    secUser
		want []string
	}{{secBob, []string{"team/app", "team/lib"}}, {secAlice, []string{"team/app", "team/lib"}}, {secPublisher, []string{"public/app"}}} {
		if got := secCatalog(t, n.URL(), c.u); !slices.Equal(got, c.want) {
			t.Errorf("catalog as %s: %q, want %q", c.u.name, got, c.want)
		}
	}
	// So does search (docker search).
	for _, c := range []struct {
		u    secUser
		want []string
	}{{secBob, []string{"team/app"}}, {secPublisher, []string{"public/app"}}} {
		r := secDo(t, nil, "GET", n.URL()+"/v1/search?q=app", c.u, nil, nil)
		var got struct{ Results []struct{ Name string } }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil {
			t.Fatalf("search as %s: %d %s", c.u.name, r.status, r.body)
		}
		var names []string
		for _, res := range got.Results {
			names = append(names, res.Name)
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("search for app as %s: %q, want %q", c.u.name, names, c.want)
		}
	}
	cfg := t.TempDir()
	if out, err := secCrane(t, cfg, "auth", "login", host, "-u", secBob.name, "-p", secBob.password); err != nil {
		t.Fatalf("crane auth login: %v\n%s", err, out)
	}
	if out, err := secCrane(t, cfg, "catalog", "--insecure", host); err != nil || !slices.Equal(strings.Fields(out), []string{"team/app", "team/lib"}) {
		t.Errorf("crane catalog as bob: %q, %v", out, err)
	}

	t.Run("anonymous limited to public", func(t *testing.T) {
		if err := secPull(secRef(t, host, "team/app:v1", false), team, secRemote(secAnonymous, nil)); secStatus(err) != http.StatusUnauthorized {
			t.Errorf("anonymous pull of team/app: %v, want 401", err)
		}
		r := secDo(t, nil, "GET", n.URL()+"/v2/team/app/manifests/v1", secAnonymous, nil, nil)
		secExpectError(t, "anonymous GET team/app manifest", r, http.StatusUnauthorized, "UNAUTHORIZED")
		if got := secCatalog(t, n.URL(), secAnonymous); !slices.Equal(got, []string{"public/app"}) {
			t.Errorf("anonymous catalog: %q, want [public/app]", got)
		}
	})
}
