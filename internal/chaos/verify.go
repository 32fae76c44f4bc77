package chaos

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/schemas"
)

// Violation is one kind of broken promise, how often it was seen, and the
// first few cases.
type Violation struct {
	Check    string
	Count    int
	Examples []string
}

// violations collects Violations by check, in the order first seen.
type violations struct {
	list []Violation
}

const examplesKept = 5

func (v *violations) add(check, format string, args ...any) {
	i := slices.IndexFunc(v.list, func(x Violation) bool { return x.Check == check })
	if i < 0 {
		v.list = append(v.list, Violation{Check: check})
		i = len(v.list) - 1
	}
	x := &v.list[i]
	x.Count++
	if len(x.Examples) < examplesKept {
		x.Examples = append(x.Examples, fmt.Sprintf(format, args...))
	}
}

// The checks, as the summary names them.
const (
	checkLost       = "acknowledged event missing from the events topic"
	checkUnacked    = "event in the events topic never acknowledged"
	checkNeverAcked = "POST never acknowledged"
	checkDLQ        = "record dead-lettered (every event posted is valid)"
	checkFold       = "current state differs from the model's fold of the acknowledged events"
	checkMissing    = "message acknowledged but absent from the current topic"
	checkExtra      = "message in the current topic never acknowledged"
	checkBackwards  = "state older than the one emitted before it"
	checkRepeated   = "state emitted again unchanged"
	checkExited     = "process ended on its own"
	checkDrained    = "processors did not fold everything by the drain deadline"
)

// topics are the run's topic and group names.
type topics struct {
	events, current, dlq, group string
}

// lagAndOpen returns the group's total lag on the events topic and the
// partitions of the current topic with a transaction open (last stable
// offset behind the end), with the current topic's ends.
func lagAndOpen(ctx context.Context, adm *kadm.Client, t topics) (lag int64, open []string, ends map[int32]int64, err error) {
	eventEnds, err := adm.ListEndOffsets(ctx, t.events)
	if err == nil {
		err = eventEnds.Error()
	}
	if err != nil {
		return 0, nil, nil, fmt.Errorf("events topic ends: %w", err)
	}
	committed, err := adm.FetchOffsets(ctx, t.group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return 0, nil, nil, fmt.Errorf("group offsets: %w", err)
	}
	eventEnds.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(t.events, o.Partition)
		at := int64(0)
		if ok && c.At > 0 {
			at = c.At
		}
		lag += o.Offset - at
	})
	stable, err := adm.ListCommittedOffsets(ctx, t.current)
	if err == nil {
		err = stable.Error()
	}
	if err != nil {
		return 0, nil, nil, fmt.Errorf("current topic stable offsets: %w", err)
	}
	high, err := adm.ListEndOffsets(ctx, t.current)
	if err == nil {
		err = high.Error()
	}
	if err != nil {
		return 0, nil, nil, fmt.Errorf("current topic ends: %w", err)
	}
	ends = make(map[int32]int64)
	stable.Each(func(o kadm.ListedOffset) {
		h, _ := high.Lookup(t.current, o.Partition)
		ends[o.Partition] = h.Offset
		if h.Offset != o.Offset {
			open = append(open, fmt.Sprintf("%d (stable %d, end %d)", o.Partition, o.Offset, h.Offset))
		}
	})
	return lag, open, ends, nil
}

// readTopic reads topic from its start to its current end with
// read_committed and calls fn for every data record, in offset order within
// a partition. The caller has made sure no transaction is open on it.
func readTopic(ctx context.Context, brokers []string, adm *kadm.Client, topic string, fn func(*kgo.Record) error) error {
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("chaos: %s ends: %w", topic, err)
	}
	left := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		return fmt.Errorf("chaos: reader: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("chaos: reading %s: %w; partitions left, with their ends: %v", topic, ctx.Err(), left)
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("chaos: reading %s: %w", topic, err)
		}
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end || ferr != nil {
				return
			}
			if !r.Attrs.IsControl() {
				ferr = fn(r)
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// eventKey identifies an event by what the model folds.
func eventKey(wamid, status string, ts int64, participant string) string {
	return fmt.Sprintf("%s|%s|%d|%s", wamid, status, ts, participant)
}

// topicFigures are what the verification read.
type topicFigures struct {
	Events         int // records in the events topic
	CurrentRecords int // records in the current topic's log
	Messages       int // keys in the current topic
}

// verify checks the topics against the acknowledged events: (1) every
// acknowledged event is in the events topic, and nothing else is, unless a
// POST was never acknowledged; nothing was dead-lettered; (2) the last state
// of every key of the current topic equals the model's fold of the
// acknowledged events; (3) no key's state ever went backwards in the
// current topic's read_committed log, nor was emitted again unchanged.
func verify(ctx context.Context, brokers []string, adm *kadm.Client, t topics, codec *schemas.Codec, policy string, acked []gen.Status, unackedPosts int, v *violations) (topicFigures, error) {
	var fig topicFigures
	want := make(map[string]int, len(acked))
	for _, s := range acked {
		want[eventKey(s.WAMID, s.Status, s.Timestamp, s.Participant)]++
	}
	got := make(map[string]int, len(want))
	var landed []gen.Status // in the topic, never acknowledged
	err := readTopic(ctx, brokers, adm, t.events, func(r *kgo.Record) error {
		fig.Events++
		ev, err := codec.DecodeStatusEvent(r.Value)
		if err != nil {
			return fmt.Errorf("chaos: %s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		k := eventKey(ev.WAMID, ev.Status, ev.Timestamp, ev.RecipientParticipantID)
		got[k]++
		if want[k] == 0 && got[k] == 1 {
			landed = append(landed, gen.Status{WAMID: ev.WAMID, Status: ev.Status, Timestamp: ev.Timestamp, Participant: ev.RecipientParticipantID})
		}
		return nil
	})
	if err != nil {
		return fig, err
	}
	for k, n := range want {
		if got[k] < n {
			v.add(checkLost, "%s: acknowledged %d times, %d in the topic", k, n, got[k])
		}
	}
	if unackedPosts == 0 {
		for _, s := range landed {
			v.add(checkUnacked, "%s", eventKey(s.WAMID, s.Status, s.Timestamp, s.Participant))
		}
	}
	err = readTopic(ctx, brokers, adm, t.dlq, func(r *kgo.Record) error {
		v.add(checkDLQ, "%s[%d]@%d: %s", r.Topic, r.Partition, r.Offset, headers(r))
		return nil
	})
	if err != nil {
		return fig, err
	}

	// What was landed without an acknowledgement is folded too: the
	// processors rightly fold it, and its absence was reported above.
	model := gen.FoldFull(append(slices.Clip(acked), landed...), policy)
	last := make(map[string]schemas.MessageStatus, len(model))
	err = readTopic(ctx, brokers, adm, t.current, func(r *kgo.Record) error {
		fig.CurrentRecords++
		cur, err := codec.DecodeMessageStatus(r.Value)
		if err != nil {
			return fmt.Errorf("chaos: %s[%d]@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		if prev, ok := last[cur.WAMID]; ok {
			if err := notOlder(policy, prev, cur); err != nil {
				v.add(checkBackwards, "partition %d offset %d: %v", r.Partition, r.Offset, err)
			} else if reflect.DeepEqual(prev, cur) {
				v.add(checkRepeated, "partition %d offset %d: %s", r.Partition, r.Offset, cur.WAMID)
			}
		}
		last[cur.WAMID] = cur
		return nil
	})
	if err != nil {
		return fig, err
	}
	fig.Messages = len(last)
	for wamid, x := range model {
		got, ok := last[wamid]
		if !ok {
			v.add(checkMissing, "%s", wamid)
			continue
		}
		if err := matches(got, x); err != nil {
			v.add(checkFold, "%v", err)
		}
	}
	for wamid := range last {
		if _, ok := model[wamid]; !ok {
			v.add(checkExtra, "%s", wamid)
		}
	}
	return fig, nil
}

func headers(r *kgo.Record) string {
	var hs []string
	for _, h := range r.Headers {
		hs = append(hs, h.Key+"="+string(h.Value))
	}
	return strings.Join(hs, " ")
}

// matches returns an error unless got is the model's fold x: the status and
// the time of each status, of the message and of each participant.
func matches(got schemas.MessageStatus, x gen.Full) error {
	if err := timesMatch(got.Status, times(got.SentAt, got.DeliveredAt, got.ReadAt, got.PlayedAt, got.FailedAt), x.Expected); err != nil {
		return fmt.Errorf("%s: %w", got.WAMID, err)
	}
	if len(got.Participants) != len(x.Participants) {
		return fmt.Errorf("%s: %d participants, want %d", got.WAMID, len(got.Participants), len(x.Participants))
	}
	for _, p := range got.Participants {
		want, ok := x.Participants[p.ID]
		if !ok {
			return fmt.Errorf("%s: participant %s never acknowledged", got.WAMID, p.ID)
		}
		if err := timesMatch(p.Status, times(p.SentAt, p.DeliveredAt, p.ReadAt, p.PlayedAt, p.FailedAt), want); err != nil {
			return fmt.Errorf("%s participant %s: %w", got.WAMID, p.ID, err)
		}
	}
	return nil
}

// statusNames name the five times in the order times keeps them.
func statusNames() [5]string { return [5]string{"sent", "delivered", "read", "played", "failed"} }

func times(sent, delivered, read, played, failed int64) [5]int64 {
	return [5]int64{sent, delivered, read, played, failed}
}

func timesMatch(status string, at [5]int64, want gen.Expected) error {
	if status != want.Status {
		return fmt.Errorf("status %s, want %s", status, want.Status)
	}
	for i, name := range statusNames() {
		if at[i] != want.At[name] {
			return fmt.Errorf("%s_at %d, want %d", name, at[i], want.At[name])
		}
	}
	return nil
}

// notOlder returns an error if cur is below prev in the lattice anywhere: a
// lower status by policy, a status time lost or later, a participant lost or
// older, a first receive time lost or later.
func notOlder(policy string, prev, cur schemas.MessageStatus) error {
	if err := timesNotOlder(policy, prev.Status, cur.Status,
		times(prev.SentAt, prev.DeliveredAt, prev.ReadAt, prev.PlayedAt, prev.FailedAt),
		times(cur.SentAt, cur.DeliveredAt, cur.ReadAt, cur.PlayedAt, cur.FailedAt)); err != nil {
		return fmt.Errorf("%s: %w", cur.WAMID, err)
	}
	if prev.FirstReceivedAt != 0 && (cur.FirstReceivedAt == 0 || cur.FirstReceivedAt > prev.FirstReceivedAt) {
		return fmt.Errorf("%s: first_received_at %d after %d", cur.WAMID, cur.FirstReceivedAt, prev.FirstReceivedAt)
	}
	parts := make(map[string]schemas.Participant, len(cur.Participants))
	for _, p := range cur.Participants {
		parts[p.ID] = p
	}
	for _, p := range prev.Participants {
		c, ok := parts[p.ID]
		if !ok {
			return fmt.Errorf("%s: participant %s lost", cur.WAMID, p.ID)
		}
		if err := timesNotOlder(policy, p.Status, c.Status,
			times(p.SentAt, p.DeliveredAt, p.ReadAt, p.PlayedAt, p.FailedAt),
			times(c.SentAt, c.DeliveredAt, c.ReadAt, c.PlayedAt, c.FailedAt)); err != nil {
			return fmt.Errorf("%s participant %s: %w", cur.WAMID, p.ID, err)
		}
	}
	return nil
}

func timesNotOlder(policy, prevStatus, curStatus string, prev, cur [5]int64) error {
	if gen.RankBy(policy, curStatus) < gen.RankBy(policy, prevStatus) {
		return fmt.Errorf("status %s after %s", curStatus, prevStatus)
	}
	for i := range prev {
		if prev[i] != 0 && (cur[i] == 0 || cur[i] > prev[i]) {
			return fmt.Errorf("%s_at %d after %d", statusNames()[i], cur[i], prev[i])
		}
	}
	return nil
}
