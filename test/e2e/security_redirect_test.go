package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestSecurityRedirectWithAuth: with routing redirect and authentication,
// a member sends a client it authorized to the holder with a signed,
// short-lived URL (clients do not resend credentials to another host);
// the URL works for that blob only, and not once tampered with.
func TestSecurityRedirectWithAuth(t *testing.T) {
	dir := t.TempDir()
	line, err := exec.Command(atollBin, "htpasswd", "alice", "pw").Output()
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, line, 0o600); err != nil {
		t.Fatal(err)
	}
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 1, routing: "redirect", secret: "redirect-secret",
		env: []string{"REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM=r", "REGISTRY_AUTH_HTPASSWD_PATH=" + htpasswd}})
	data := make([]byte, 64<<10)
	_, _ = rand.Read(data)
	d := digest.FromBytes(data)
	req, _ := http.NewRequest("POST", c.members[0].URL()+"/v2/team/app/blobs/uploads/?digest="+d.String(), bytes.NewReader(data))
	req.SetBasicAuth("alice", "pw")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %v %v", resp, err)
	}
	var reader *clusterMember
	for _, m := range c.members {
		if files, err := m.blobFiles(); err == nil && !files[d] {
			reader = m
			break
		}
	}
	if reader == nil {
		t.Fatal("every member holds the blob with R=1")
	}
	// Clients drop credentials on a redirect to another host (Go's and
	// docker's do for another host name; on loopback the name is the
	// same): the signed URL must carry the access by itself.
	var location string
	client := &http.Client{CheckRedirect: func(r *http.Request, via []*http.Request) error {
		location = r.URL.String()
		return nil
	}}
	req, _ = http.NewRequest("GET", reader.URL()+"/v2/team/app/blobs/"+d.String(), nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != d || location == "" {
		t.Fatalf("redirected read: %s, %d bytes, via %q", resp.Status, len(body), location)
	}
	plain, err := http.Get(location)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(plain.Body)
	plain.Body.Close()
	if plain.StatusCode != http.StatusOK || digest.FromBytes(body) != d {
		t.Fatalf("signed URL without credentials: %s, %d bytes", plain.Status, len(body))
	}
	u, _ := url.Parse(location)
	q := u.Query()
	for name, tamper := range map[string]func(url.Values){
		"wrong signature": func(v url.Values) {
			sig := []byte(v.Get("sig"))
			sig[0] ^= 1 // another hex digit
			v.Set("sig", string(sig))
		},
		"later expiry": func(v url.Values) { v.Set("expires", v.Get("expires")+"0") },
		"no signature": func(v url.Values) { v.Del("sig") },
	} {
		v := url.Values{}
		for k, vs := range q {
			v[k] = append([]string(nil), vs...)
		}
		tamper(v)
		u.RawQuery = v.Encode()
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401", name, resp.Status)
		}
	}
}
