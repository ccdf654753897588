package peer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestSecret(t *testing.T) {
	t.Parallel()
	secret := func(s string) func(*Config) { return func(c *Config) { c.Secret = s } }
	a, b := joinPair(t, secret("s1")) // members sharing the secret gossip and call
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.Client().Vector(ctx, "a"); err != nil {
		t.Fatalf("call with the right secret: %v", err)
	}

	for _, tc := range []struct{ name, secret string }{{"other", "s2"}, {"none", ""}} {
		bad := newMember(t, testLogger(t), tc.name, freePort(t), secret(tc.secret))
		bad.Start()
		if n, err := bad.Join(ctx, []string{a.gossip}); err == nil || n != 0 {
			t.Errorf("%s: joining with secret %q = %d, %v; want refused", tc.name, tc.secret, n, err)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
		if got := len(a.Members()); got != 2 {
			t.Errorf("%s: a sees %d members after a refused join, want 2", tc.name, got)
		}

		// Even knowing a's gRPC address, its calls are refused.
		bad.members.record(&memberlist.Node{Name: "a"}, nodeMeta{GRPC: a.grpcAddr}, StateAlive)
		_, err := bad.Client().Vector(ctx, "a")
		if !errors.Is(err, ErrUnauthenticated) || status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: call with secret %q: %v, want ErrUnauthenticated", tc.name, tc.secret, err)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}
