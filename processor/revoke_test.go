package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
)

// TestRevokesInQuickSuccession: an idle processor A owns every partition of
// a consumer-protocol group; B joins, and the group takes three partitions
// from A. C's join is held until A's heartbeat acknowledging that revoke
// arrives, and that heartbeat is held until C has joined, so its answer
// takes one more partition from A: two revokes a few milliseconds apart, as
// a scaling group does. franz-go's GroupTransactSession passes on no revoke
// after the first until a transaction ends; a processor that heard only the
// first went on claiming the partition it lost second (two CI runs of
// TestCrashRecovery never got ready that way). Every partition must end with
// exactly one owner and every processor ready.
func TestRevokesInQuickSuccession(t *testing.T) {
	// Heartbeats every 250 ms: A hears of B within that, not within 5 s.
	f := newFixture(t, 6, kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "250"}))
	if f.cluster.Real() {
		t.Skip("holds heartbeats with kfake's controls")
	}
	f.cfg.GroupProtocol = "consumer"
	members := func() []string { return groupMembers(f) }

	a := f.start(t.TempDir())
	aID := onlyMember(t, f)

	// Installed before B joins, so that A's acknowledgement is held
	// whether it comes before C's join or after.
	var (
		mu       sync.Mutex
		joiners  []string // members seen joining after A: B, then C
		acked    sync.Once
		ackSeen  = make(chan struct{})
		released bool
	)
	f.cluster.Fake.ControlKey(int16(kmsg.ConsumerGroupHeartbeat), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.ConsumerGroupHeartbeatRequest)
		mu.Lock()
		if req.MemberEpoch == 0 && req.MemberID != aID && !slices.Contains(joiners, req.MemberID) {
			joiners = append(joiners, req.MemberID)
		}
		isC := len(joiners) == 2 && req.MemberID == joiners[1] && req.MemberEpoch == 0
		isAck := req.MemberID == aID && !released && owned(req) > 0 && owned(req) < 6
		if isAck {
			released = true
		}
		mu.Unlock()
		switch {
		case isC:
			// C joins only once A has acknowledged its first revoke,
			// so that the first revoke does not already count C.
			f.cluster.Fake.SleepControl(func() { <-ackSeen })
		case isAck:
			// A's acknowledgement is answered only once C is in, so
			// that the answer revokes again.
			acked.Do(func() { close(ackSeen) })
			f.cluster.Fake.SleepControl(func() {
				for len(members()) < 3 {
					time.Sleep(time.Millisecond)
				}
			})
		}
		return nil, nil, false
	})
	b := f.launch(f.cfg, openStore(t, t.TempDir()))
	c := f.launch(f.cfg, openStore(t, t.TempDir()))

	procs := map[string]*running{"a": a, "b": b, "c": c}
	kafkatest.Eventually(t, 60*time.Second, func() error { return oneOwnerEach(t, procs, 6, nil) })
	mu.Lock()
	if !released {
		t.Error("A's acknowledgement of its first revoke was never held: the test made no second revoke")
	}
	mu.Unlock()
	for _, r := range procs {
		r.stop(t)
	}
}

// oneOwnerEach reports a processor of procs not ready, a partition of n
// that not exactly one of them owns, or one that owns other than counts
// gives for it; it fails t if one's Run has returned.
func oneOwnerEach(t *testing.T, procs map[string]*running, n int32, counts map[string]int) error {
	t.Helper()
	owners := map[int32][]string{}
	for name, r := range procs {
		select {
		case err := <-r.done:
			t.Fatalf("%s: Run returned: %v", name, err)
		default:
		}
		if ok, why := r.p.Ready(); !ok {
			return fmt.Errorf("%s not ready: %s", name, why)
		}
		owned := r.p.Owned()
		if want, ok := counts[name]; ok && len(owned) != want {
			return fmt.Errorf("%s owns %d partitions, want %d", name, len(owned), want)
		}
		for _, part := range owned {
			owners[part] = append(owners[part], name)
		}
	}
	for part := range n {
		if o := owners[part]; len(o) != 1 {
			slices.Sort(o)
			return fmt.Errorf("partition %d claimed by %v", part, o)
		}
	}
	return nil
}

// owned counts the partitions a heartbeat says its member owns; -1 for a
// heartbeat that does not say.
func owned(req *kmsg.ConsumerGroupHeartbeatRequest) int {
	if req.Topics == nil {
		return -1
	}
	n := 0
	for _, t := range req.Topics {
		n += len(t.Partitions)
	}
	return n
}

// TestStaleUnstartedWorker: a worker left waiting for the offsets of a
// partition whose revoke never reached the processor is dropped once it has
// waited past the grace and the group coordinator does not list the
// partition for the member; a younger one stays until then. Should franz-go
// fetch that partition's offsets after all, adjustOffsets makes a worker for
// it again.
func TestStaleUnstartedWorker(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) {
			f := newFixture(t, 4)
			f.cfg.GroupProtocol = protocol
			f.cfg.Testing.NoUnstartedCheck = true // the test runs the check itself
			a := f.start(t.TempDir())
			defer a.stop(t)
			b := f.start(t.TempDir())
			defer b.stop(t)
			ctx := t.Context()
			var theirs []int32
			kafkatest.Eventually(t, 60*time.Second, func() error {
				mine := a.p.Owned()
				theirs = b.p.Owned()
				slices.Sort(mine)
				slices.Sort(theirs)
				if len(mine) != 2 || len(theirs) != 2 {
					return fmt.Errorf("a owns %v, b %v", mine, theirs)
				}
				for _, r := range []*running{a, b} {
					if ok, why := r.p.Ready(); !ok {
						return fmt.Errorf("not ready: %s", why)
					}
				}
				listed, err := a.p.MemberPartitions(ctx)
				if err != nil {
					return err
				}
				if !slices.Equal(listed, mine) {
					return fmt.Errorf("the coordinator lists %v for a, which owns %v", listed, mine)
				}
				return nil
			})

			old, young := theirs[0], theirs[1]
			a.p.AddUnstartedWorker(old, time.Hour)
			a.p.AddUnstartedWorker(young, 0)
			if ok, _ := a.p.Ready(); ok {
				t.Fatal("a is ready with workers waiting for offsets")
			}
			if got := a.p.DropStaleUnstarted(ctx, time.Minute); !slices.Equal(got, []int32{old}) {
				t.Fatalf("dropped %v, want [%d]", got, old)
			}
			if ok, why := a.p.Ready(); ok || why != fmt.Sprintf("partition %d catching up", young) {
				t.Fatalf("a: ready %t (%s) with the young worker waiting", ok, why)
			}
			if got := a.p.DropStaleUnstarted(ctx, 0); !slices.Equal(got, []int32{young}) {
				t.Fatalf("dropped %v, want [%d]", got, young)
			}
			if ok, why := a.p.Ready(); !ok {
				t.Fatalf("a not ready once the stale workers are gone: %s", why)
			}
			if got := a.p.DropStaleUnstarted(ctx, 0); len(got) != 0 {
				t.Fatalf("a second pass dropped %v", got)
			}

			made, started, err := a.p.FetchedOffset(ctx, old, 0)
			if err != nil || !made || !started {
				t.Fatalf("offsets fetched for partition %d without a worker: made %t, started %t, err %v", old, made, started, err)
			}
		})
	}
}

// TestMissedRevokeOfStartedWorker: A owns every partition and has folded a
// message in each; B joins, and the revoke that takes B's share from A never
// reaches A's workers, as franz-go's GroupTransactSession does to every
// revoke after the first until a transaction ends. A's started workers for
// those partitions would answer reads for ever with states B has moved on
// from. They must be dropped once the coordinator has twice not listed their
// partitions for A, leaving every partition with one owner, both processors
// running, and A refusing reads of B's messages.
func TestMissedRevokeOfStartedWorker(t *testing.T) {
	for _, protocol := range []string{"classic", "consumer"} {
		t.Run(protocol, func(t *testing.T) {
			f := newFixture(t, 4)
			f.cfg.GroupProtocol = protocol
			var logs lockedBuffer
			cfgA := f.cfg
			cfgA.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			var (
				mu        sync.Mutex
				swallowed []int32
			)
			cfgA.Testing.SwallowRevoke = func(part int32) bool {
				mu.Lock()
				defer mu.Unlock()
				swallowed = append(swallowed, part)
				return true
			}
			a := f.startOn(cfgA, openStore(t, t.TempDir()))
			defer a.stop(t)

			// One message in each partition, sent, folded by A.
			wamids := map[int32]string{}
			for i := 0; len(wamids) < 4; i++ {
				id := fmt.Sprintf("wamid.missed.%d", i)
				part, _ := a.p.Partition(id)
				if _, ok := wamids[part]; !ok {
					wamids[part] = id
					f.produce(f.event(id, "sent", 1_700_000_000))
				}
			}
			kafkatest.Eventually(t, 30*time.Second, func() error {
				for _, id := range wamids {
					if _, _, err := a.p.Get(id); err != nil {
						return err
					}
				}
				return nil
			})

			b := f.start(t.TempDir())
			defer b.stop(t)
			procs := map[string]*running{"a": a, "b": b}
			kafkatest.Eventually(t, 60*time.Second, func() error { return oneOwnerEach(t, procs, 4, map[string]int{"b": 2}) })
			mu.Lock()
			lost := slices.Clone(swallowed)
			mu.Unlock()
			slices.Sort(lost)
			lost = slices.Compact(lost)
			theirs := b.p.Owned()
			slices.Sort(theirs)
			if len(lost) == 0 || !slices.Equal(lost, theirs) {
				t.Fatalf("A's revokes swallowed %v; B owns %v", lost, theirs)
			}
			// Counted and warned of just after each is taken out of
			// Owned.
			kafkatest.Eventually(t, 10*time.Second, func() error {
				if got := a.p.Stats().MissedRevokes; got != uint64(len(lost)) {
					return fmt.Errorf("A counted %d missed revokes, want %d", got, len(lost))
				}
				if n := strings.Count(logs.String(), "its revoke never reached the processor; dropped its worker"); n != len(lost) {
					return fmt.Errorf("A warned %d times of a dropped started worker, want %d", n, len(lost))
				}
				return nil
			})

			// B folds what comes next for its messages; A no longer
			// answers for them.
			part := lost[0]
			f.produce(f.event(wamids[part], "read", 1_700_000_100))
			kafkatest.Eventually(t, 30*time.Second, func() error {
				m, _, err := b.p.Get(wamids[part])
				if err != nil {
					return err
				}
				if m.Status != "read" {
					return fmt.Errorf("B has %s", m.Status)
				}
				return nil
			})
			if _, _, err := a.p.Get(wamids[part]); !errors.Is(err, processor.ErrNotOwner) {
				t.Fatalf("A answers for partition %d, which B owns: %v", part, err)
			}
		})
	}
}

// TestUnlistedWorkerWithRecordsStays: a started worker whose partition the
// coordinator did not list is dropped only when no records of it were polled
// since: records in the batch show franz-go still consumes the partition, and
// a worker dropped then would make the next batch's records of it stop Run.
// Nor is it dropped after one check alone.
func TestUnlistedWorkerWithRecordsStays(t *testing.T) {
	f := newFixture(t, 4)
	f.cfg.Testing.NoUnstartedCheck = true // the test sets the counts itself
	var (
		mu    sync.Mutex
		armed func()
	)
	f.cfg.Testing.BeforeTxnEnd = func() {
		mu.Lock()
		defer mu.Unlock()
		if armed != nil {
			armed()
			armed = nil
		}
	}
	a := f.start(t.TempDir())
	defer a.stop(t)
	idIn := func(part int32, tag string) string {
		for i := 0; ; i++ {
			id := fmt.Sprintf("wamid.%s.%d", tag, i)
			if p, _ := a.p.Partition(id); p == part {
				return id
			}
		}
	}
	folded := func(id, status string) {
		t.Helper()
		kafkatest.Eventually(t, 30*time.Second, func() error {
			select {
			case err := <-a.done:
				t.Fatalf("Run returned: %v", err)
			default:
			}
			m, _, err := a.p.Get(id)
			if err != nil {
				return err
			}
			if m.Status != status {
				return fmt.Errorf("%s is %s", id, m.Status)
			}
			return nil
		})
	}

	// Counted past the threshold while a batch with its records is in
	// flight: the batch restarts the count.
	mu.Lock()
	armed = func() { a.p.MarkUnlisted(0, 2) }
	mu.Unlock()
	id := idIn(0, "kept")
	f.produce(f.event(id, "sent", 1_700_000_000))
	folded(id, "sent")
	if n := a.p.Unlisted(0); n != 0 {
		t.Fatalf("partition 0's count is %d after a batch with its records, want 0 (-1: dropped)", n)
	}

	// One check alone does not drop it; a later batch of another
	// partition shows the poll loop went round.
	a.p.MarkUnlisted(0, 1)
	other := idIn(1, "other")
	f.produce(f.event(other, "sent", 1_700_000_000))
	folded(other, "sent")
	if n := a.p.Unlisted(0); n != 1 {
		t.Fatalf("partition 0's count is %d after one check, want 1 (-1: dropped)", n)
	}

	f.produce(f.event(id, "read", 1_700_000_100))
	folded(id, "read")
	if got := a.p.Stats().MissedRevokes; got != 0 {
		t.Fatalf("%d workers dropped as missed revokes", got)
	}
}

// TestRevokeDuringTransaction: in a consumer-protocol group, a heartbeat
// that brings a revoke while a transaction is open makes franz-go's
// heartbeat loop stop answering the heartbeat that End forces, until the
// revoke callback has run; and that callback waits for the poll loop, which
// waits in End. A's transaction is held until its revoke callback waits
// (B joining takes partitions from A), as a transaction of a few
// milliseconds is when a timer heartbeat brings the revoke. A must abort
// that transaction rather than wait in End for ever, fold the held record
// again where it belongs, and the group must settle with one owner for
// each partition.
func TestRevokeDuringTransaction(t *testing.T) {
	t.Run("aborted", func(t *testing.T) { testRevokeDuringTransaction(t, endAborts) })
	t.Run("waiting End cancelled", func(t *testing.T) { testRevokeDuringTransaction(t, endCancelled) })
	t.Run("waiting End timed out", func(t *testing.T) { testRevokeDuringTransaction(t, endTimedOut) })
}

// How testRevokeDuringTransaction's held transaction ends.
const (
	endAborts    = iota // it sees the waiting callback and aborts
	endCancelled        // it tries to commit, waits, and is cancelled after endGrace
	endTimedOut         // the same, with a grace past the transaction timeout
)

// testRevokeDuringTransaction makes the revoke. With endCancelled and
// endTimedOut, A tries to commit all the same, and its End, which then
// waits for the revoke, must be cancelled (after a second, or after the
// transaction timeout), its transaction aborted, and Run go on. On kfake,
// heartbeats every 250 ms bring the revoke sooner.
func testRevokeDuringTransaction(t *testing.T, mode int) {
	f := newFixture(t, 6, kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "250"}))
	f.cfg.GroupProtocol = "consumer"
	hold := newTxnHold()
	cfgA := f.cfg
	cfgA.Testing.BeforeTxnEnd = hold.beforeEnd
	if mode != endAborts {
		// Longer than the hold, so that the broker has not
		// aborted the transaction before End commits its offsets:
		// a real broker's heartbeats come every 5 s.
		cfgA.Testing.CommitDespiteWaitingCallback = true
		cfgA.TransactionTimeout = 10 * time.Second
		if f.cluster.Real() {
			cfgA.TransactionTimeout = 30 * time.Second
		}
		if mode == endTimedOut {
			cfgA.Testing.EndGrace = time.Hour
		}
	}
	a := f.startOn(cfgA, openStore(t, t.TempDir()))
	defer a.stop(t)

	id, b := holdAndJoin(t, f, a, hold)
	defer b.stop(t)
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if !a.p.RebalanceWaits() {
			return errors.New("A's revoke callback does not wait for its poll loop yet")
		}
		return nil
	})
	close(hold.release)
	released := time.Now()
	if mode != endAborts {
		// A cancelled End would take its transaction timeout with
		// endGrace ignored, and for ever without the cancel.
		within := cfgA.TransactionTimeout / 2
		if mode == endTimedOut {
			within = 3 * cfgA.TransactionTimeout
		}
		waitEndCancelled(t, a, within)
		waited := time.Since(released)
		if mode == endCancelled && waited < processor.EndGrace {
			t.Errorf("A's End was cancelled %s after its transaction was let go, before its grace", waited)
		}
		if mode == endTimedOut && waited < cfgA.TransactionTimeout {
			t.Errorf("A's End was cancelled %s after its transaction was let go, before its transaction timeout", waited)
		}
		t.Logf("A's End was cancelled within %s of its transaction being let go", waited.Round(time.Millisecond))
	}

	settledAfterHeld(t, f, a, b, id)
}

// groupMembers returns the member ids of f's group, none if it cannot say.
func groupMembers(f *fixture) []string {
	d, err := kadm.NewClient(f.cl).DescribeConsumerGroups(context.Background(), f.cfg.Group)
	if err != nil {
		return nil
	}
	var ids []string
	for _, m := range d[f.cfg.Group].Members {
		ids = append(ids, m.MemberID)
	}
	return ids
}

// onlyMember waits until f's group has one member and returns its id.
func onlyMember(t *testing.T, f *fixture) string {
	t.Helper()
	var id string
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if ids := groupMembers(f); len(ids) == 1 {
			id = ids[0]
			return nil
		}
		return errors.New("the group does not have one member yet")
	})
	return id
}

// txnHold holds one transaction before its end, once armed: its
// beforeEnd, a BeforeTxnEnd hook, closes held and waits for release.
type txnHold struct {
	mu            sync.Mutex
	armed         bool
	held, release chan struct{}
}

func newTxnHold() *txnHold {
	return &txnHold{held: make(chan struct{}), release: make(chan struct{})}
}

// arm holds the next transaction to end.
func (h *txnHold) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = true
}

func (h *txnHold) beforeEnd() {
	h.mu.Lock()
	stop := h.armed
	h.armed = false
	h.mu.Unlock()
	if stop {
		close(h.held)
		<-h.release
	}
}

// waitEndCancelled waits up to within for a transaction end of r's to be
// cancelled; should r's Run return meanwhile, it fails at once.
func waitEndCancelled(t *testing.T, r *running, within time.Duration) {
	t.Helper()
	kafkatest.Eventually(t, within, func() error {
		select {
		case err := <-r.done:
			r.done <- err // for r.stop
			t.Fatalf("Run returned %v", err)
		default:
		}
		if r.p.Stats().EndsCancelled == 0 {
			return errors.New("no transaction end cancelled yet")
		}
		return nil
	})
}

// holdAndJoin produces an event of a message of a's, holds the transaction
// that folds it before its end, then launches B; the caller stops B.
func holdAndJoin(t *testing.T, f *fixture, a *running, hold *txnHold) (string, *running) {
	t.Helper()
	hold.arm()
	id := ownedID(a)
	f.produce(f.event(id, "sent", 1_700_000_000))
	<-hold.held
	return id, f.launch(f.cfg, openStore(t, t.TempDir()))
}

// ownedID returns a message id whose partition r owns.
func ownedID(r *running) string {
	mine := r.p.Owned()
	for i := 0; ; i++ {
		id := fmt.Sprintf("wamid.busy.%d", i)
		if part, _ := r.p.Partition(id); slices.Contains(mine, part) {
			return id
		}
	}
}

// TestSignalDuringEnd: A's End begins before its revoke callback waits, as
// when the heartbeat that brings the revoke crosses End's start. The
// heartbeat of A's that would bring B's join is held until A's End is
// under way, so End does not know of the rebalance and tries to commit; it
// then waits for the callback, which waits for it. The signal that comes
// during End must cancel it a second later; A must abort and go on, and the
// group settle.
func TestSignalDuringEnd(t *testing.T) {
	f := newFixture(t, 6, kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "250"}))
	if f.cluster.Real() {
		t.Skip("holds a heartbeat with kfake's controls")
	}
	f.cfg.GroupProtocol = "consumer"
	var (
		mu      sync.Mutex
		bJoined bool
		hbHeld  = make(chan struct{})
		hbLet   = make(chan struct{})
	)
	hold := newTxnHold()
	cfgA := f.cfg
	cfgA.TransactionTimeout = 10 * time.Second
	cfgA.Testing.BeforeTxnEnd = hold.beforeEnd
	a := f.startOn(cfgA, openStore(t, t.TempDir()))
	defer a.stop(t)
	aID := onlyMember(t, f)
	f.cluster.Fake.ControlKey(int16(kmsg.ConsumerGroupHeartbeat), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		req := kr.(*kmsg.ConsumerGroupHeartbeatRequest)
		mu.Lock()
		if req.MemberID != aID && req.MemberEpoch == 0 {
			bJoined = true
		}
		stop := req.MemberID == aID && bJoined && hbHeld != nil
		if stop {
			close(hbHeld)
			hbHeld = nil
		}
		mu.Unlock()
		if stop {
			f.cluster.Fake.SleepControl(func() { <-hbLet })
		}
		return nil, nil, false
	})

	mu.Lock()
	waitHeld := hbHeld
	mu.Unlock()
	id, b := holdAndJoin(t, f, a, hold)
	defer b.stop(t)
	select {
	case <-waitHeld:
	case <-time.After(30 * time.Second):
		t.Fatal("no heartbeat of A's came after B joined")
	}
	close(hold.release)
	kafkatest.Eventually(t, 10*time.Second, func() error {
		if !a.p.Ending() {
			return errors.New("A's End has not begun")
		}
		return nil
	})
	if a.p.RebalanceWaits() {
		t.Fatal("A's callback waited before its End began")
	}
	close(hbLet)
	waitEndCancelled(t, a, cfgA.TransactionTimeout/2)
	settledAfterHeld(t, f, a, b, id)
}

// settledAfterHeld checks that the group of A and B settles with one owner
// per partition and B owning half, that A aborted the transaction that held
// id's event, and that id's state was then folded where it now belongs and
// emitted once.
func settledAfterHeld(t *testing.T, f *fixture, a, b *running, id string) {
	t.Helper()
	procs := map[string]*running{"a": a, "b": b}
	kafkatest.Eventually(t, 60*time.Second, func() error { return oneOwnerEach(t, procs, 6, map[string]int{"b": 3}) })
	if a.p.Stats().Aborted == 0 {
		t.Error("A's held transaction was not aborted")
	}
	part, _ := a.p.Partition(id)
	owner := a
	if slices.Contains(b.p.Owned(), part) {
		owner = b
	}
	kafkatest.Eventually(t, 30*time.Second, func() error {
		m, _, err := owner.p.Get(id)
		if err != nil {
			return err
		}
		if m.Status != "sent" {
			return fmt.Errorf("%s is %s", id, m.Status)
		}
		return nil
	})
	f.consume(f.cfg.CurrentTopic, func(recs []*kgo.Record) error {
		n := 0
		for _, r := range recs {
			if string(r.Key) == id {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s's state was emitted %d times, want once", id, n)
		}
		return nil
	})
}
