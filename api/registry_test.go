package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
)

func TestBase(t *testing.T) {
	srv := newServer(t, api.Config{})
	resp, body := do(t, "GET", srv.URL+"/v2/", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" || string(body) != "{}" {
		t.Fatalf("GET /v2/: %s %v %q", resp.Status, resp.Header, body)
	}
}

func TestDeletesDisabled(t *testing.T) {
	srv := newServer(t, api.Config{DisableDelete: true})
	_, md := pushImage(t, srv.URL, "r", "v1")
	b := pushBlob(t, srv.URL, "r", []byte("blob"))
	for _, path := range []string{"/v2/r/manifests/" + md.String(), "/v2/r/manifests/v1", "/v2/r/blobs/" + b.String()} {
		resp, body := do(t, "DELETE", srv.URL+path, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || errorCode(t, body) != "UNSUPPORTED" {
			t.Errorf("DELETE %s: %s %s", path, resp.Status, body)
		}
	}
	if resp, _ := do(t, "GET", srv.URL+"/v2/r/manifests/v1", nil); resp.StatusCode != 200 {
		t.Errorf("tag gone after refused delete: %s", resp.Status)
	}
}

func TestDeleteTagKeepsManifest(t *testing.T) {
	srv := newServer(t, api.Config{})
	_, md := pushImage(t, srv.URL, "r", "v1")
	if resp, _ := do(t, "PUT", srv.URL+"/v2/r/manifests/v2", mustGet(t, srv.URL+"/v2/r/manifests/v1"),
		"Content-Type", "application/vnd.oci.image.manifest.v1+json"); resp.StatusCode != 201 {
		t.Fatalf("retag: %s", resp.Status)
	}
	if resp, _ := do(t, "DELETE", srv.URL+"/v2/r/manifests/v1", nil); resp.StatusCode != 202 {
		t.Fatalf("delete tag: %s", resp.Status)
	}
	if resp, _ := do(t, "GET", srv.URL+"/v2/r/manifests/v1", nil); resp.StatusCode != 404 {
		t.Errorf("deleted tag still resolves: %s", resp.Status)
	}
	for _, ref := range []string{md.String(), "v2"} {
		if resp, _ := do(t, "GET", srv.URL+"/v2/r/manifests/"+ref, nil); resp.StatusCode != 200 {
			t.Errorf("GET %s after tag delete: %s", ref, resp.Status)
		}
	}
	// Deleting by digest removes the remaining tag too.
	if resp, _ := do(t, "DELETE", srv.URL+"/v2/r/manifests/"+md.String(), nil); resp.StatusCode != 202 {
		t.Fatalf("delete manifest: %s", resp.Status)
	}
	resp, body := do(t, "GET", srv.URL+"/v2/r/tags/list", nil)
	if resp.StatusCode != 200 || strings.Contains(string(body), "v2") {
		t.Errorf("tags after manifest delete: %s %s", resp.Status, body)
	}
}

func TestManifestHeaders(t *testing.T) {
	srv := newServer(t, api.Config{})
	m, md := pushImage(t, srv.URL, "r", "v1")
	for _, method := range []string{"GET", "HEAD"} {
		resp, body := do(t, method, srv.URL+"/v2/r/manifests/v1", nil,
			"Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Docker-Content-Digest") != md.String() ||
			h.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" || h.Get("Content-Length") != itoa(len(m)) {
			t.Errorf("%s: %s %v", method, resp.Status, h)
		}
		if method == "GET" && string(body) != string(m) {
			t.Errorf("GET body differs from what was pushed")
		}
	}
}

func TestPagination(t *testing.T) {
	srv := newServer(t, api.Config{})
	for _, repo := range []string{"c", "a", "b/x", "b"} {
		pushImage(t, srv.URL, repo, "t1")
	}
	pushImage(t, srv.URL, "a", "t3")
	pushImage(t, srv.URL, "a", "t2")
	var got []string
	next := "/v2/_catalog?n=2"
	for next != "" {
		resp, body := do(t, "GET", srv.URL+next, nil)
		var page struct{ Repositories []string }
		if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", next, resp.Status, body)
		}
		got = append(got, page.Repositories...)
		next = strings.TrimSuffix(strings.TrimPrefix(strings.Split(resp.Header.Get("Link"), ";")[0], "<"), ">")
	}
	if strings.Join(got, ",") != "a,b,b/x,c" {
		t.Errorf("catalog pages = %v", got)
	}
	resp, body := do(t, "GET", srv.URL+"/v2/a/tags/list?n=2&last=t1", nil)
	if string(body) != `{"name":"a","tags":["t2","t3"]}` || resp.Header.Get("Link") != "" {
		t.Errorf("tags page: %s link %q", body, resp.Header.Get("Link"))
	}
	if _, body := do(t, "GET", srv.URL+"/v2/a/tags/list?n=0", nil); string(body) != `{"name":"a","tags":[]}` {
		t.Errorf("n=0: %s", body)
	}
}

func TestReferrers(t *testing.T) {
	srv := newServer(t, api.Config{})
	_, subject := pushImage(t, srv.URL, "r", "v1")
	empty := pushBlob(t, srv.URL, "r", []byte("{}"))
	sig := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sig",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + empty.String() + `","size":2},"layers":[],` +
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + subject.String() + `","size":1},` +
		`"annotations":{"k":"v"}}`)
	sd := digest.FromBytes(sig)
	resp, _ := do(t, "PUT", srv.URL+"/v2/r/manifests/"+sd.String(), sig, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != 201 || resp.Header.Get("OCI-Subject") != subject.String() {
		t.Fatalf("push referrer: %s OCI-Subject %q", resp.Status, resp.Header.Get("OCI-Subject"))
	}
	for _, tc := range []struct {
		query    string
		want     int
		filtered bool
	}{{"", 1, false}, {"?artifactType=application/vnd.example.sig", 1, true}, {"?artifactType=other/type", 0, true}} {
		resp, body := do(t, "GET", srv.URL+"/v2/r/referrers/"+subject.String()+tc.query, nil)
		var idx struct {
			MediaType string
			Manifests []struct {
				Digest       digest.Digest
				ArtifactType string
				Annotations  map[string]string
			}
		}
		if err := json.Unmarshal(body, &idx); err != nil || resp.StatusCode != 200 {
			t.Fatalf("referrers%s: %s %s", tc.query, resp.Status, body)
		}
		if len(idx.Manifests) != tc.want || (resp.Header.Get("OCI-Filters-Applied") != "") != tc.filtered ||
			idx.MediaType != "application/vnd.oci.image.index.v1+json" {
			t.Errorf("referrers%s = %s (filters %q)", tc.query, body, resp.Header.Get("OCI-Filters-Applied"))
		}
		if tc.want == 1 && (idx.Manifests[0].Digest != sd || idx.Manifests[0].ArtifactType != "application/vnd.example.sig" || idx.Manifests[0].Annotations["k"] != "v") {
			t.Errorf("referrer descriptor = %+v", idx.Manifests[0])
		}
	}
	if _, body := do(t, "GET", srv.URL+"/v2/r/referrers/"+digest.FromString("none").String(), nil); !strings.Contains(string(body), `"manifests":[]`) {
		t.Errorf("no referrers: %s", body)
	}
}

func mustGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, body := do(t, "GET", url, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return body
}

func TestSearch(t *testing.T) {
	srv := newServer(t, api.Config{})
	for _, repo := range []string{"team/web", "team/db", "other/webapp"} {
		pushImage(t, srv.URL, repo, "v1")
	}
	resp, body := do(t, "GET", srv.URL+"/v1/search?q=web&n=25", nil)
	var got struct {
		NumResults int `json:"num_results"`
		Query      string
		Results    []struct{ Name string }
	}
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("search: %s %s", resp.Status, body)
	}
	if got.NumResults != 2 || got.Query != "web" || got.Results[0].Name != "other/webapp" || got.Results[1].Name != "team/web" {
		t.Errorf("search = %s", body)
	}
}
