package peer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Cluster authentication. Both keys derive from Config.Secret, so members
// share nothing but that string:
//
//   - gossip key: SHA-256(secret), memberlist's AES-256-GCM key;
//   - gRPC token: hex(HMAC-SHA256(secret, tokenLabel)), sent by every call as
//     "authorization: Bearer <token>" and compared in constant time.
//
// The token is a shared bearer secret on a plaintext connection: it keeps
// out members with another secret and stray clients, not an eavesdropper on
// the cluster network. Run members on a private network (Swarm's encrypted
// overlay, a VPC).
const tokenLabel = "atoll peer grpc token v1"

// authHeader is the gRPC metadata key of the token.
const authHeader = "authorization"

// gossipKey derives memberlist's encryption key from the cluster secret.
func gossipKey(secret string) []byte {
	k := sha256.Sum256([]byte(secret))
	return k[:]
}

// grpcToken derives the gRPC bearer token from the cluster secret.
func grpcToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(tokenLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// tokenCredentials attaches the token to every call. They are allowed over
// insecure transport: the connections between members are plaintext.
type tokenCredentials string

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{authHeader: "Bearer " + string(t)}, nil
}

func (tokenCredentials) RequireTransportSecurity() bool { return false }

// authorizer checks the token of incoming calls.
type authorizer struct{ token []byte }

func (a authorizer) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(authHeader) {
		got, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), a.token) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong cluster token: members must share the cluster secret")
}

func (a authorizer) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (a authorizer) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	if err := a.check(ss.Context()); err != nil {
		return err
	}
	return next(srv, ss)
}
