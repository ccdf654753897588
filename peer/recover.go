package peer

import (
	"context"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recovery answers a call whose handler panicked with Internal, and logs
// the panic with its stack: a bug, or a corrupt page of the metadata file
// met while serving one call, fails that call, not the member (gRPC lets a
// handler's panic end the process).
type recovery struct{ log *slog.Logger }

func (r recovery) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (_ any, err error) {
	defer r.catch(info.FullMethod, &err)
	return h(ctx, req)
}

func (r recovery) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer r.catch(info.FullMethod, &err)
	return h(srv, ss)
}

// catch is deferred by the interceptors: it recovers a panic of the call
// to method and sets its error.
func (r recovery) catch(method string, err *error) {
	if p := recover(); p != nil {
		r.log.Error("a gRPC handler panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "%s failed on the member: %v", method, p)
	}
}
