package pullthrough

import (
	"context"
	"sync"
)

// group runs at most one call per key at a time and gives its result to
// every caller that asked meanwhile (singleflight). The call runs in its own
// goroutine under a context detached from the callers' (values kept,
// cancellation dropped), so a client that gives up neither cancels the fetch
// for the others nor leaves it half done; fn bounds its own duration. The
// zero value is ready; it may be used concurrently.
type group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done chan struct{} // closed when val and err are set
	val  T
	err  error
}

// do returns the result of fn for key, starting fn unless a call for key is
// in flight, or ctx's error if ctx ends first.
func (g *group[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	g.mu.Lock()
	c, ok := g.calls[key]
	if !ok {
		if g.calls == nil {
			g.calls = map[string]*call[T]{}
		}
		c = &call[T]{done: make(chan struct{})}
		g.calls[key] = c
		go func(ctx context.Context) {
			c.val, c.err = fn(ctx)
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(c.done)
		}(context.WithoutCancel(ctx))
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
