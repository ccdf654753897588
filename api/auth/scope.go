package auth

import (
	"net/http"

	"github.com/atollhq/atoll/api"
)

// Access is a repository and the actions a request needs on it.
type Access struct {
	Repository string
	Actions    []string
}

// actions is the action each resource's methods need (api.ParseRoute
// routes a request for the API and for its authorization alike, so a
// request is authorized for exactly the repository the API will serve).
// A resource or method absent here needs no repository: authentication
// only.
var actions = map[api.Resource]map[string]string{
	api.Tags:      {"GET": ActionPull},
	api.Referrers: {"GET": ActionPull},
	api.Manifest:  {"GET": ActionPull, "HEAD": ActionPull, "PUT": ActionPush, "DELETE": ActionDelete},
	api.Uploads:   {"POST": ActionPush},
	// Every request of an upload session is part of a push, its
	// cancellation included: it deletes nothing a pull could see.
	api.Upload: {"GET": ActionPush, "PATCH": ActionPush, "PUT": ActionPush, "DELETE": ActionPush},
	api.Blob:   {"GET": ActionPull, "HEAD": ActionPull, "DELETE": ActionDelete},
}

// Scope returns the repository a Distribution API request acts on and the
// actions it needs there: pull to read manifests, blobs, tags and
// referrers; push for uploads and manifest puts; delete for manifest and
// blob deletes. /v2/, /v2/_catalog and requests the API does not route
// need no repository (repo is "", actions nil): authentication only. A
// cross-repository mount also needs pull on its source; see Scopes.
func Scope(r *http.Request) (repo string, actions []string) {
	s := Scopes(r)
	if len(s) == 0 {
		return "", nil
	}
	return s[0].Repository, s[0].Actions
}

// Scopes is Scope with, for a cross-repository mount (POST
// .../blobs/uploads/?mount=<digest>&from=<repo>), a second entry: pull on
// the source repository.
func Scopes(r *http.Request) []Access {
	route := api.ParseRoute(r.URL.EscapedPath())
	action, ok := actions[route.Resource][r.Method]
	if !ok {
		return nil
	}
	out := []Access{{Repository: route.Name, Actions: []string{action}}}
	if r.Method == http.MethodPost {
		q := r.URL.Query()
		if from := q.Get("from"); from != "" && q.Get("mount") != "" {
			out = append(out, Access{Repository: from, Actions: []string{ActionPull}})
		}
	}
	return out
}
