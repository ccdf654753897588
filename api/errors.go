package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// Error codes of the distribution spec ("Error Codes").
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeDenied              = "DENIED"
	codePaginationInvalid   = "PAGINATION_NUMBER_INVALID"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeUnsupported         = "UNSUPPORTED"
	codeRangeInvalid        = "RANGE_INVALID"
	codeUnavailable         = "UNAVAILABLE"
	codeUnknown             = "UNKNOWN"
)

// Error is an error the client sees: an HTTP status and one entry of the
// spec's error JSON. Handlers return it; serveError writes it.
type Error struct {
	Status  int
	Code    string
	Message string
	Detail  any
	// Header is set on the response, e.g. Range on a 416.
	Header http.Header
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors of refused requests, for the parts of the registry's HTTP API
// that live outside this package (authentication, members' endpoints).
// Return them wrapped in a Refusal to give the client a message of their
// own.
var (
	// ErrUnauthorized: the request lacks valid credentials (401).
	ErrUnauthorized = errors.New("authentication required")
	// ErrDenied: the requester may not do this (403).
	ErrDenied = errors.New("requested access to the resource is denied")
	// ErrDigestInvalid: a digest in the request is malformed (400).
	ErrDigestInvalid = errors.New("invalid digest")
	// ErrUnsupported: the request asks for something not offered (400).
	ErrUnsupported = errors.New("the operation is unsupported")
)

// A Refusal refuses a request with a message written for the client. Err
// is its kind, one of the errors of the table below; Detail, if set, is
// the spec's detail entry.
type Refusal struct {
	Err     error
	Message string
	Detail  any
}

func (r *Refusal) Error() string { return r.Message + ": " + r.Err.Error() }

// Unwrap returns the refusal's kind.
func (r *Refusal) Unwrap() error { return r.Err }

// domainErrors is the one table from errors to what the client sees:
// status, code and message. An empty message means the error's own text,
// allowed only for errors that every layer wraps with words written for the
// client (a manifest's fault, a quota's reason); any other error's text may
// name members, files or rpc failures, and is logged, never sent.
var domainErrors = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{storage.ErrBlobUnknown, http.StatusNotFound, codeBlobUnknown, "blob unknown to registry"},
	{storage.ErrManifestUnknown, http.StatusNotFound, codeManifestUnknown, "manifest unknown"},
	{storage.ErrTagUnknown, http.StatusNotFound, codeManifestUnknown, "manifest unknown"},
	{storage.ErrNameUnknown, http.StatusNotFound, codeNameUnknown, "repository name not known to registry"},
	{storage.ErrUploadUnknown, http.StatusNotFound, codeBlobUploadUnknown, "blob upload unknown to registry"},
	{storage.ErrDigestMismatch, http.StatusBadRequest, codeDigestInvalid, "provided digest did not match uploaded content"},
	{storage.ErrUnavailable, http.StatusServiceUnavailable, codeUnavailable, "the registry cannot serve this now; retry later"},
	// A full disk is the registry's condition: 507, never a 4xx.
	{storage.ErrNoSpace, http.StatusInsufficientStorage, codeUnknown, storage.ErrNoSpace.Error()},
	{oci.ErrManifestInvalid, http.StatusBadRequest, codeManifestInvalid, ""},
	// The operator's rules: the message names the quota or the tag.
	{ErrQuotaExceeded, http.StatusForbidden, codeDenied, ""},
	{ErrTagImmutable, http.StatusForbidden, codeDenied, ""},
	{ErrReadOnly, http.StatusServiceUnavailable, codeUnavailable, ErrReadOnly.Error()},
	{ErrUnauthorized, http.StatusUnauthorized, codeUnauthorized, ErrUnauthorized.Error()},
	{ErrDenied, http.StatusForbidden, codeDenied, ErrDenied.Error()},
	{ErrDigestInvalid, http.StatusBadRequest, codeDigestInvalid, ErrDigestInvalid.Error()},
	{ErrUnsupported, http.StatusBadRequest, codeUnsupported, ErrUnsupported.Error()},
}

// toError turns any handler error into the client's Error.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range domainErrors {
		if !errors.Is(err, m.err) {
			continue
		}
		e := &Error{Status: m.status, Code: m.code, Message: m.message}
		var ref *Refusal
		if errors.As(err, &ref) {
			e.Detail = ref.Detail
			if ref.Message != "" {
				e.Message = ref.Message
			}
		}
		if e.Message == "" {
			e.Message = err.Error()
		}
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Code: codeUnknown, Message: "internal error"}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// WriteError writes err as the spec's error JSON (application/json), with
// the status, code and message the table above gives it. The client reads
// that message, never err's own text unless the table says so; err is
// logged instead: as an error when the server is at fault, at debug level
// otherwise. Every OCI error of the registry's HTTP API goes out through
// it, wherever it starts. log may be nil.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	if log != nil {
		if e.Status >= 500 {
			log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
		}
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
