package api

import (
	"net/http"
	"strings"
)

// A Resource is what a Distribution API path names.
type Resource uint8

// The API's resources, by path; <name> may contain slashes.
const (
	NoResource Resource = iota
	Base                // /v2/
	Catalog             // /v2/_catalog
	Search              // /v1/search
	Tags                // /v2/<name>/tags/list
	Referrers           // /v2/<name>/referrers/<digest>
	Manifest            // /v2/<name>/manifests/<reference>
	Uploads             // /v2/<name>/blobs/uploads/
	Upload              // /v2/<name>/blobs/uploads/<id>
	Blob                // /v2/<name>/blobs/<digest>
)

// A Route is a parsed API path: the resource, the repository it belongs
// to and the last segment that names the manifest, digest or upload.
// Name and Arg are as in the path, still escaped, and not validated.
type Route struct {
	Resource Resource
	Name     string
	Arg      string
}

// ParseRoute parses a request's escaped path (URL.EscapedPath). A name
// is everything between /v2/ and the resource's own segments, which are
// matched from the end: the longest name wins, as the Distribution API's
// grammar needs for names that contain "manifests" or "blobs". The API
// and its authorization (api/auth) both route by it, so a request is
// authorized for exactly the repository it is served for. A path of no
// resource returns NoResource.
func ParseRoute(path string) Route {
	switch path {
	case "/v2/":
		return Route{Resource: Base}
	case "/v2/_catalog":
		return Route{Resource: Catalog}
	case "/v1/search":
		return Route{Resource: Search}
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return Route{}
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok && name != "" {
		return Route{Resource: Tags, Name: name}
	}
	if name, ok := strings.CutSuffix(rest, "/blobs/uploads/"); ok && name != "" {
		return Route{Resource: Uploads, Name: name}
	}
	// <name>/<kind>/<arg>, with arg one non-empty segment.
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || i == len(rest)-1 {
		return Route{}
	}
	head, arg := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j <= 0 {
		return Route{}
	}
	name := head[:j]
	switch head[j+1:] {
	case "referrers":
		return Route{Resource: Referrers, Name: name, Arg: arg}
	case "manifests":
		return Route{Resource: Manifest, Name: name, Arg: arg}
	case "blobs":
		return Route{Resource: Blob, Name: name, Arg: arg}
	case "uploads":
		if name, ok := strings.CutSuffix(name, "/blobs"); ok && name != "" {
			return Route{Resource: Upload, Name: name, Arg: arg}
		}
	}
	return Route{}
}

// The path values a handler reads (http.Request.PathValue).
const (
	pathName      = "name"
	pathReference = "reference"
	pathDigest    = "digest"
	pathUploadID  = "id"
)

// argName is the path value that holds a resource's Arg, for every
// resource (Blob is the last).
var argName = [...]string{Referrers: pathDigest, Manifest: pathReference, Upload: pathUploadID, Blob: pathDigest}

// A router serves each resource's methods by a handler, answering a path
// of no resource with 404 NAME_UNKNOWN and a method the resource does not
// serve with 405 UNSUPPORTED.
type router struct {
	handlers             [Blob + 1]map[string]http.Handler
	notFound, notAllowed http.Handler
}

func (rt *router) handle(res Resource, h http.Handler, methods ...string) {
	if rt.handlers[res] == nil {
		rt.handlers[res] = map[string]http.Handler{}
	}
	for _, m := range methods {
		rt.handlers[res][m] = h
	}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := ParseRoute(r.URL.EscapedPath())
	methods := rt.handlers[route.Resource]
	if methods == nil {
		rt.notFound.ServeHTTP(w, r)
		return
	}
	h, ok := methods[r.Method]
	if !ok {
		rt.notAllowed.ServeHTTP(w, r)
		return
	}
	if route.Name != "" {
		r.SetPathValue(pathName, route.Name)
	}
	if v := argName[route.Resource]; v != "" {
		r.SetPathValue(v, route.Arg)
	}
	h.ServeHTTP(w, r)
}
