package peer

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/storage"
)

// Errors of calls to other members, besides the storage domain errors that
// cross the wire. Test for them with errors.Is.
var (
	// ErrMemberUnknown: no member of that name was ever seen.
	ErrMemberUnknown = errors.New("member unknown")
	// ErrMemberDown: the member died or left.
	ErrMemberDown = errors.New("member is not alive")
	// ErrUnreachable: the member did not answer (connection refused,
	// reset, timed out).
	ErrUnreachable = errors.New("member unreachable")
	// ErrUnauthenticated: the member refused the call's cluster token,
	// because the two members do not share the same secret.
	ErrUnauthenticated = errors.New("cluster secret rejected")
)

// errorDomain is the ErrorInfo domain of atoll's error reasons.
const errorDomain = "atoll.peer"

// wireErrors is the one table of errors that cross the wire: the server
// sends the code and names the reason in an ErrorInfo detail; the client
// turns the reason back into the error.
var wireErrors = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{storage.ErrBlobUnknown, codes.NotFound, "BLOB_UNKNOWN"},
	{storage.ErrDigestMismatch, codes.InvalidArgument, "DIGEST_MISMATCH"},
	{storage.ErrManifestUnknown, codes.NotFound, "MANIFEST_UNKNOWN"},
	{storage.ErrNameUnknown, codes.NotFound, "NAME_UNKNOWN"},
	{storage.ErrTagUnknown, codes.NotFound, "TAG_UNKNOWN"},
	{storage.ErrUploadUnknown, codes.NotFound, "UPLOAD_UNKNOWN"},
	{storage.ErrUnavailable, codes.Unavailable, "STORAGE_UNAVAILABLE"},
	{storage.ErrNoSpace, codes.ResourceExhausted, "NO_SPACE"},
}

// toStatus converts a handler's error into the gRPC status error the server
// returns.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, w := range wireErrors {
		if errors.Is(err, w.err) {
			st := status.New(w.code, err.Error())
			if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: w.reason, Domain: errorDomain}); derr == nil {
				st = d
			}
			return st.Err()
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err // already a status, e.g. from reading the request stream
	}
	return status.Error(codes.Internal, err.Error())
}

// remoteError is the error of a call to another member: the gRPC status,
// unwrapping to the matching error (a storage domain error, ErrUnreachable,
// ErrUnauthenticated, or the error of the caller's context, only when that
// context ended). status.Code works on it too.
type remoteError struct {
	member, op string
	st         *status.Status
	err        error // the matching error, or nil
}

func (e *remoteError) Error() string {
	if e.err == nil || e.err == ErrUnreachable {
		return fmt.Sprintf("peer %s: %s: %s: %s", e.member, e.op, e.st.Code(), e.st.Message())
	}
	return fmt.Sprintf("peer %s: %s: %s", e.member, e.op, e.st.Message())
}

func (e *remoteError) Unwrap() error              { return e.err }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }

// fromStatus converts the error of call op to member, made with ctx, into
// a remoteError, or wraps it if it is no gRPC status.
func fromStatus(ctx context.Context, member, op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("peer %s: %s: %w", member, op, err)
	}
	e := &remoteError{member: member, op: op, st: st}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		for _, w := range wireErrors {
			if w.reason == info.GetReason() {
				e.err = w.err
			}
		}
	}
	if e.err == nil {
		switch st.Code() {
		case codes.Unauthenticated:
			e.err = ErrUnauthenticated
		case codes.Unavailable:
			e.err = ErrUnreachable
		case codes.Canceled, codes.DeadlineExceeded:
			// The caller's context error only if its context ended. gRPC
			// also says Canceled when the connection is closed under the
			// call (connPool.drop: the member died, left or moved), and
			// the member may give up on its side: it did not answer.
			if cerr := ctx.Err(); cerr != nil {
				e.err = cerr
			} else {
				e.err = ErrUnreachable
			}
		}
	}
	return e
}
