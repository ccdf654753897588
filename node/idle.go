package node

import (
	"context"
	"fmt"
	"time"
)

// idleWatch ends a context, with "<who> sent nothing for <idle>" as its
// cause, once kick has not been called for idle: a member that stops
// sending (frozen, cut off) is given up rather than waited on.
type idleWatch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
}

// watchIdle returns a watch over a context derived from ctx; the caller
// uses w.ctx, calls w.kick on every sign of life and ends with w.end.
func watchIdle(ctx context.Context, who string, idle time.Duration) *idleWatch {
	w := &idleWatch{idle: idle}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	cause := fmt.Errorf("sent nothing for %v", idle)
	if who != "" {
		cause = fmt.Errorf("%s %w", who, cause)
	}
	w.timer = time.AfterFunc(idle, func() { w.cancel(cause) })
	return w
}

func (w *idleWatch) kick() { w.timer.Reset(w.idle) }

// end stops the watch and returns err, or, when err came of the context
// ending, why it ended.
func (w *idleWatch) end(err error) error {
	w.timer.Stop()
	if cause := context.Cause(w.ctx); err != nil && cause != nil && w.ctx.Err() != nil {
		err = cause
	}
	w.cancel(nil)
	return err
}
