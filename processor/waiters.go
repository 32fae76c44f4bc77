package processor

import (
	"sync"
	"sync/atomic"
)

// waiters lets query API requests wait for a message's state to change
// without polling. Waiters of one wamid share one channel, closed when a
// committed batch or the view changes that message; thousands of waiters
// cost a map entry per waited message, and a commit with nobody waiting
// costs one atomic load.
type waiters struct {
	n  atomic.Int64 // waited messages; 0 skips the lock on every commit
	mu sync.Mutex
	m  map[string]*waitEntry
}

type waitEntry struct {
	ch   chan struct{}
	refs int
}

// wait returns a channel closed at the next change of wamid, and a release
// function to call when the caller stops waiting. Register before reading
// the state, so a change in between is not missed.
func (w *waiters) wait(wamid string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string]*waitEntry)
	}
	e := w.m[wamid]
	if e == nil {
		e = &waitEntry{ch: make(chan struct{})}
		w.m[wamid] = e
		w.n.Add(1)
	}
	e.refs++
	return e.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		e.refs--
		if e.refs == 0 && w.m[wamid] == e {
			delete(w.m, wamid)
			w.n.Add(-1)
		}
	}
}

// notify wakes the waiters of each wamid.
func (w *waiters) notify(wamids []string) {
	if w.n.Load() == 0 || len(wamids) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range wamids {
		if e := w.m[id]; e != nil {
			close(e.ch)
			delete(w.m, id)
			w.n.Add(-1)
		}
	}
}

// notifyAll wakes every waiter to read again: a change whose messages
// cannot be named (a bulk load of the view) may concern any of them.
func (w *waiters) notifyAll() {
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, e := range w.m {
		close(e.ch)
		delete(w.m, id)
		w.n.Add(-1)
	}
}
