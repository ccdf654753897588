package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

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

// domainErrors maps storage and model errors to what the client sees. A
// message, when set, replaces the error's text (which may name files).
var domainErrors = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{storage.ErrBlobUnknown, http.StatusNotFound, codeBlobUnknown, ""},
	{storage.ErrManifestUnknown, http.StatusNotFound, codeManifestUnknown, ""},
	{storage.ErrTagUnknown, http.StatusNotFound, codeManifestUnknown, ""},
	{storage.ErrNameUnknown, http.StatusNotFound, codeNameUnknown, ""},
	{storage.ErrUploadUnknown, http.StatusNotFound, codeBlobUploadUnknown, ""},
	{storage.ErrDigestMismatch, http.StatusBadRequest, codeDigestInvalid, ""},
	{storage.ErrUnavailable, http.StatusServiceUnavailable, codeUnavailable, ""},
	// A full disk is the registry's condition: 507, never a 4xx.
	{storage.ErrNoSpace, http.StatusInsufficientStorage, codeUnknown, storage.ErrNoSpace.Error()},
	{oci.ErrManifestInvalid, http.StatusBadRequest, codeManifestInvalid, ""},
	// The operator's rules: the message names the quota or the tag.
	{ErrQuotaExceeded, http.StatusForbidden, codeDenied, ""},
	{ErrTagImmutable, http.StatusForbidden, codeDenied, ""},
	{ErrReadOnly, http.StatusServiceUnavailable, codeUnavailable, ""},
}

// toError turns any handler error into the client's Error.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range domainErrors {
		if errors.Is(err, m.err) {
			msg := m.message
			if msg == "" {
				msg = err.Error()
			}
			return &Error{Status: m.status, Code: m.code, Message: msg}
		}
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

// serveError logs err when it is the server's fault and writes the spec's
// error JSON.
func serveError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	if e.Status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
