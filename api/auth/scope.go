package auth

import (
	"net/http"

	"github.com/gorilla/mux"
)

// Access is a repository and the actions a request needs on it.
type Access struct {
	Repository string
	Actions    []string
}

// routes mirrors the API's routes (api.routes: same templates, methods and
// order, same mux options) so that a request is authorized for exactly the
// repository the API will serve. Each route's name is the action it needs.
var routes = func() *mux.Router {
	m := mux.NewRouter()
	m.SkipClean(true)
	m.UseEncodedPath()
	const name = "/v2/{name:.+}"
	add := func(path, action string, methods ...string) {
		m.NewRoute().Path(path).Methods(methods...).Name(action)
	}
	add("/v2/", "", "GET", "HEAD")
	add("/v2/_catalog", "", "GET")
	add(name+"/tags/list", ActionPull, "GET")
	add(name+"/referrers/{digest}", ActionPull, "GET")
	add(name+"/manifests/{reference}", ActionPull, "GET", "HEAD")
	add(name+"/manifests/{reference}", ActionPush, "PUT")
	add(name+"/manifests/{reference}", ActionDelete, "DELETE")
	add(name+"/blobs/uploads/", ActionPush, "POST")
	// Every request of an upload session is part of a push, its
	// cancellation included: it deletes nothing a pull could see.
	add(name+"/blobs/uploads/{id}", ActionPush, "GET", "PATCH", "PUT", "DELETE")
	add(name+"/blobs/{digest}", ActionPull, "GET", "HEAD")
	add(name+"/blobs/{digest}", ActionDelete, "DELETE")
	return m
}()

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
	var m mux.RouteMatch
	if !routes.Match(r, &m) || m.Route == nil || m.Route.GetName() == "" {
		return nil
	}
	out := []Access{{Repository: m.Vars["name"], Actions: []string{m.Route.GetName()}}}
	if r.Method == http.MethodPost {
		q := r.URL.Query()
		if from := q.Get("from"); from != "" && q.Get("mount") != "" {
			out = append(out, Access{Repository: from, Actions: []string{ActionPull}})
		}
	}
	return out
}
