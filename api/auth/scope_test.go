package auth

import (
	"net/http/httptest"
	"slices"
	"testing"
)

func TestScope(t *testing.T) {
	const d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, tt := range []struct {
		method, target string
		want           []Access
	}{
		{"GET", "/v2/", nil},
		{"HEAD", "/v2/", nil},
		{"GET", "/v2/_catalog?n=10", nil},
		{"GET", "/v2/foo/tags/list", []Access{{"foo", []string{"pull"}}}},
		{"GET", "/v2/a/b/c/tags/list?n=1&last=x", []Access{{"a/b/c", []string{"pull"}}}},
		{"GET", "/v2/foo/referrers/" + d, []Access{{"foo", []string{"pull"}}}},
		{"GET", "/v2/foo/manifests/latest", []Access{{"foo", []string{"pull"}}}},
		{"HEAD", "/v2/foo/bar/manifests/" + d, []Access{{"foo/bar", []string{"pull"}}}},
		{"PUT", "/v2/foo/manifests/v1", []Access{{"foo", []string{"push"}}}},
		{"DELETE", "/v2/foo/manifests/" + d, []Access{{"foo", []string{"delete"}}}},
		{"POST", "/v2/foo/blobs/uploads/", []Access{{"foo", []string{"push"}}}},
		{"POST", "/v2/foo/blobs/uploads/?digest=" + d, []Access{{"foo", []string{"push"}}}},
		{"POST", "/v2/foo/blobs/uploads/?mount=" + d + "&from=other/repo",
			[]Access{{"foo", []string{"push"}}, {"other/repo", []string{"pull"}}}},
		{"POST", "/v2/foo/blobs/uploads/?from=other", []Access{{"foo", []string{"push"}}}},
		{"GET", "/v2/foo/blobs/uploads/abc", []Access{{"foo", []string{"push"}}}},
		{"PATCH", "/v2/foo/blobs/uploads/abc", []Access{{"foo", []string{"push"}}}},
		{"PUT", "/v2/foo/blobs/uploads/abc?digest=" + d, []Access{{"foo", []string{"push"}}}},
		{"DELETE", "/v2/foo/blobs/uploads/abc", []Access{{"foo", []string{"push"}}}},
		{"GET", "/v2/foo/blobs/" + d, []Access{{"foo", []string{"pull"}}}},
		{"HEAD", "/v2/foo/blobs/" + d, []Access{{"foo", []string{"pull"}}}},
		{"DELETE", "/v2/foo/blobs/" + d, []Access{{"foo", []string{"delete"}}}},
		// Names may contain the route words; the API's routes decide.
		{"GET", "/v2/a/manifests/b/tags/list", []Access{{"a/manifests/b", []string{"pull"}}}},
		{"GET", "/v2/blobs/blobs/x", []Access{{"blobs", []string{"pull"}}}},
		{"GET", "/v2/a/blobs/uploads/b/blobs/x", []Access{{"a/blobs/uploads/b", []string{"pull"}}}},
		// Routes the API answers 404 or 405 to: authentication only.
		{"POST", "/v2/foo/manifests/v1", nil},
		{"GET", "/v2/foo", nil},
		{"GET", "/v2/foo/blobs/uploads/", nil},
		{"GET", "/v3/foo/manifests/v1", nil},
		{"GET", "/v2/foo/manifests/a/b", nil},
	} {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		got := Scopes(r)
		if !equalAccess(got, tt.want) {
			t.Errorf("%s %s: got %v, want %v", tt.method, tt.target, got, tt.want)
		}
		repo, actions := Scope(r)
		if len(tt.want) > 0 && (repo != tt.want[0].Repository || !slices.Equal(actions, tt.want[0].Actions)) ||
			len(tt.want) == 0 && (repo != "" || actions != nil) {
			t.Errorf("Scope(%s %s) = %q %v", tt.method, tt.target, repo, actions)
		}
	}
}

func equalAccess(a, b []Access) bool {
	return slices.EqualFunc(a, b, func(x, y Access) bool {
		return x.Repository == y.Repository && slices.Equal(x.Actions, y.Actions)
	})
}
