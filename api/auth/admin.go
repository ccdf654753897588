package auth

import (
	"net/http"
	"slices"

	"github.com/atollhq/atoll/api"
)

// ActionAdmin lets a user operate the registry: the member's own endpoints
// under /_atoll/v1 (cluster status, garbage collection), which atoll gc,
// atoll status and registry garbage-collect call. A rule grants it by name
// and needs no repositories:
//
//	access:
//	  rules:
//	    - users: [alice]
//	      actions: [admin]
//
// "*" does not include it. With no rules at all, every authenticated user
// may do everything, admin included (registry:2's htpasswd behaviour).
const ActionAdmin = "admin"

// AdminScope is the token scope that asks for ActionAdmin:
// registry:atoll:admin. The built-in token server grants it to the users
// Admin names; an external token server grants it as it sees fit.
const AdminScope = "registry:" + adminResource + ":" + ActionAdmin

const adminResource = "atoll"

// Admin reports whether id may operate the registry (ActionAdmin).
func (a *Authenticator) Admin(id Identity) bool {
	if a == nil {
		return true
	}
	return a.access.admin(id)
}

// admin is Authenticator.Admin.
func (ar *accessRules) admin(id Identity) bool {
	if id.Anonymous || id.User == "" {
		return false
	}
	if len(ar.rules) == 0 {
		return true
	}
	for _, r := range ar.rules {
		if r.appliesTo(id) && slices.Contains(r.actions, ActionAdmin) {
			return true
		}
	}
	return false
}

// grantsAdmin reports whether a token carries AdminScope.
func (c *claims) grantsAdmin() bool {
	for _, ac := range c.Access {
		if ac.Type == "registry" && ac.Name == adminResource && slices.Contains(ac.Actions, ActionAdmin) {
			return true
		}
	}
	return false
}

// WrapAdmin returns next behind authentication that requires ActionAdmin:
// no credentials answer 401 with a challenge (asking for AdminScope in
// token modes), bad credentials 401, an authenticated user who is not an
// administrator 403 DENIED. A Basic user is an administrator when Admin
// says so; a Bearer token when it carries AdminScope. The identity is
// stored in the request's context for next. A nil *Authenticator returns
// next.
func (a *Authenticator) WrapAdmin(next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, tok, err := a.authenticate(r)
		switch {
		case err != nil:
			a.log.Info("authentication failed", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			a.refuse.challenge(w, r, AdminScope, "invalid_token", Access{})
			return
		case id.Anonymous:
			a.refuse.challenge(w, r, AdminScope, "", Access{})
			return
		case tok != nil && !tok.grantsAdmin(), tok == nil && !a.Admin(id):
			a.log.Info("administration denied", "remote", r.RemoteAddr, "path", r.URL.Path, "user", id.User)
			a.refuse.writeError(w, r, api.ErrDenied, "administrator rights required", Access{})
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithIdentity(r.Context(), id)))
	})
}
