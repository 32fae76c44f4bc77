package processor

import "testing"

// TestNotifyAllWakesEveryWaiter checks the wake-up of a bulk load of the
// view: every waiter, of any message, is woken, and waiting again works.
func TestNotifyAllWakesEveryWaiter(t *testing.T) {
	var w waiters
	a, releaseA := w.wait("wamid.a")
	a2, releaseA2 := w.wait("wamid.a")
	b, releaseB := w.wait("wamid.b")
	w.notifyAll()
	for name, ch := range map[string]<-chan struct{}{"a": a, "a again": a2, "b": b} {
		select {
		case <-ch:
		default:
			t.Fatalf("waiter %s not woken", name)
		}
	}
	releaseA()
	releaseA2()
	releaseB()
	if n := w.n.Load(); n != 0 {
		t.Fatalf("%d waited messages left", n)
	}
	c, releaseC := w.wait("wamid.a")
	defer releaseC()
	w.notify([]string{"wamid.a"})
	select {
	case <-c:
	default:
		t.Fatal("a waiter after notifyAll is not woken by notify")
	}
}
