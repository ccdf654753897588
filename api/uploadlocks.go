package api

import "sync"

// uploadLocks serialises the requests that change an upload session.
// None waits on a slow client for long: a status GET takes no lock, a
// DELETE aborts the body of the request holding the lock, and the janitor
// skips a session whose lock is taken (a request on it is in flight, so it
// is not abandoned). Its methods may be called concurrently.
type uploadLocks struct {
	mu    sync.Mutex
	locks map[string]*uploadLock
}

// uploadLock is the lock of one session; the fields are guarded by
// uploadLocks.mu.
type uploadLock struct {
	sync.Mutex
	refs    int          // holders and waiters
	body    *watchedBody // body of the holder, if it reads one into the upload
	cancels int          // DELETEs holding or waiting
}

func newUploadLocks() *uploadLocks { return &uploadLocks{locks: map[string]*uploadLock{}} }

// ref returns the lock of id, counting one more holder or waiter.
// l.mu is held.
func (l *uploadLocks) ref(id string) *uploadLock {
	ul := l.locks[id]
	if ul == nil {
		ul = &uploadLock{}
		l.locks[id] = ul
	}
	ul.refs++
	return ul
}

// release returns the unlock of ul, the lock of id.
func (l *uploadLocks) release(id string, ul *uploadLock) func() {
	return func() {
		l.mu.Lock()
		ul.body = nil
		ul.Unlock()
		if ul.refs--; ul.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}

// lockWithBody takes the lock of upload id for a request whose body b
// goes into the upload, aborting b if a DELETE of the upload is waiting.
func (l *uploadLocks) lockWithBody(id string, b *watchedBody) (unlock func()) {
	l.mu.Lock()
	ul := l.ref(id)
	l.mu.Unlock()
	ul.Lock()
	l.mu.Lock()
	ul.body = b
	cancel := ul.cancels > 0
	l.mu.Unlock()
	if cancel {
		b.abort()
	}
	return l.release(id, ul)
}

// lockToCancel takes the lock of upload id for a DELETE: it aborts the
// body of the request holding the lock, and of any that takes it first.
func (l *uploadLocks) lockToCancel(id string) (unlock func()) {
	l.mu.Lock()
	ul := l.ref(id)
	ul.cancels++
	b := ul.body
	l.mu.Unlock()
	if b != nil {
		b.abort()
	}
	ul.Lock()
	l.mu.Lock()
	ul.cancels--
	l.mu.Unlock()
	return l.release(id, ul)
}

// tryLock takes the lock of upload id if no request holds it or waits
// for it.
func (l *uploadLocks) tryLock(id string) (unlock func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks[id] != nil {
		return nil, false
	}
	ul := l.ref(id)
	ul.Lock() // free: nobody else knows it
	return l.release(id, ul), true
}
