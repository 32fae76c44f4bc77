package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// Partition returns the partition of the events topic that holds wamid: the
// partition Kafka's default partitioner (murmur2 of the key) chooses, which
// is where every edge writes it. It returns false before Run knows the
// partition count.
func (p *Processor) Partition(wamid string) (int32, bool) {
	p.mu.RLock()
	n := p.partitions
	p.mu.RUnlock()
	if n == 0 {
		return 0, false
	}
	return int32(p.keyer.Partition(&kgo.Record{Key: []byte(wamid)}, int(n))), true
}

// Get returns the committed state of wamid. It returns ErrNotOwner when this
// instance does not own the message's partition and ErrNotFound when the
// message has no state.
func (p *Processor) Get(wamid string) (schemas.MessageStatus, int32, error) {
	if err := p.store.Err(); err != nil {
		// A failed store answers nothing, whoever owns what: Run is
		// stopping, and its partitions may already be let go.
		return schemas.MessageStatus{}, 0, fmt.Errorf("%w: get %s: %w", ErrStore, wamid, err)
	}
	part, ok := p.Partition(wamid)
	if !ok {
		return schemas.MessageStatus{}, 0, fmt.Errorf("%w: not started", ErrNotOwner)
	}
	p.mu.RLock()
	w := p.owned[part]
	p.mu.RUnlock()
	from := part
	switch {
	case w != nil && w.caughtUp.Load():
	case p.cfg.ServeAll:
		from = viewBase + part
	default:
		return schemas.MessageStatus{}, part, fmt.Errorf("%w: partition %d", ErrNotOwner, part)
	}
	m, found, err := p.store.Get(from, wamid)
	if err != nil {
		return schemas.MessageStatus{}, part, fmt.Errorf("%w: get %s: %w", ErrStore, wamid, err)
	}
	if !found {
		return schemas.MessageStatus{}, part, ErrNotFound
	}
	return m.View(p.store.Policy()), part, nil
}

// Owned returns the partitions this instance owns now, in no order.
func (p *Processor) Owned() []int32 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	parts := make([]int32, 0, len(p.owned))
	for part := range p.owned {
		parts = append(parts, part)
	}
	return parts
}

// Ready reports whether the processor has joined its group and every owned
// partition has caught up with the group's committed offset.
func (p *Processor) Ready() (bool, string) {
	if err := p.store.Err(); err != nil {
		return false, err.Error() // before "not running": it says why
	}
	if !p.running.Load() {
		return false, "not running"
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.partitions == 0 {
		return false, "topics not ready"
	}
	if !p.joined {
		return false, "joining the consumer group"
	}
	for part, w := range p.owned {
		if !w.caughtUp.Load() {
			return false, fmt.Sprintf("partition %d catching up", part)
		}
	}
	if p.cfg.ServeAll && !p.view.ready.Load() {
		return false, "view of the current topic catching up"
	}
	return true, "ok"
}

// Register adds the query API to mux:
//
//	GET /v1/messages/{wamid}  the current folded state as JSON; 404 unknown;
//	                          ?wait_for=read&timeout=30s holds the request
//	                          until the status is reached or passed (200), or
//	                          the timeout passes (408)
//	GET /v1/messages/{wamid}/timeline  every event folded, and the anomalies
//	GET /healthz              200 while the process serves
//	GET /readyz               200 once every owned partition caught up
func (p *Processor) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/messages/{wamid}", p.serveMessage)
	mux.HandleFunc("GET /v1/messages/{wamid}/timeline", p.serveTimeline)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := p.Ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ok, "detail": why})
	})
}

// maxWait bounds ?timeout= of a waiting request.
const maxWait = 5 * time.Minute

func (p *Processor) serveMessage(w http.ResponseWriter, r *http.Request) {
	wamid := r.PathValue("wamid")
	if q := r.URL.Query(); q.Has("wait_for") {
		want, err := state.ParseStatus(q.Get("wait_for"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: "wait_for: " + err.Error(), WAMID: wamid})
			return
		}
		timeout := 30 * time.Second
		if v := q.Get("timeout"); v != "" {
			if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 || timeout > maxWait {
				writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("timeout: want a duration from 1ms to %s, got %q", maxWait, v), WAMID: wamid})
				return
			}
		}
		p.serveWait(w, r, wamid, want, timeout)
		return
	}
	view, part, err := p.Get(wamid)
	p.writeState(w, wamid, view, part, err)
}

// serveWait holds the request until wamid's status reaches want or passes
// it (by the policy's rank: a failed passes everything under failed-wins),
// or until timeout: 200 with the state, or 408 with the state so far.
func (p *Processor) serveWait(w http.ResponseWriter, r *http.Request, wamid string, want state.Status, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	policy := p.store.Policy()
	for {
		changed, release := p.waiters.wait(wamid)
		view, part, err := p.Get(wamid)
		reached := false
		if err == nil {
			s, _ := state.ParseStatus(view.Status)
			reached = policy.Rank(s) >= policy.Rank(want)
		}
		if reached || (err != nil && !errors.Is(err, ErrNotFound)) {
			release()
			p.writeState(w, wamid, view, part, err)
			return
		}
		select {
		case <-changed:
			release()
		case <-ctx.Done():
			release()
			if r.Context().Err() != nil {
				return // the client left
			}
			body := map[string]any{"error": fmt.Sprintf("status %s not reached within %s", want, timeout), "wamid": wamid}
			if err == nil {
				body["state"] = MessageJSON(view, part)
			}
			writeJSON(w, http.StatusRequestTimeout, body)
			return
		}
	}
}

// writeState answers with a message's state, or the error getting it.
func (p *Processor) writeState(w http.ResponseWriter, wamid string, view schemas.MessageStatus, part int32, err error) {
	if !p.writeErr(w, wamid, err) {
		writeJSON(w, http.StatusOK, MessageJSON(view, part))
	}
}

// writeErr answers with err's status code and reports whether there was an
// error: 404 for ErrNotFound, 503 for ErrNotOwner, 500 for the rest.
func (p *Processor) writeErr(w http.ResponseWriter, wamid string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no status seen for this message", WAMID: wamid})
	case errors.Is(err, ErrNotOwner):
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error(), WAMID: wamid})
	default:
		p.log.Error("query failed", "wamid", wamid, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "state store error", WAMID: wamid})
	}
	return true
}

type apiError struct {
	Error string `json:"error"`
	WAMID string `json:"wamid,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Message is the query API's JSON form of a message's state. Timestamps are
// payload times in unix seconds and are omitted for statuses never seen.
type Message struct {
	WAMID                 string        `json:"wamid"`
	Status                string        `json:"status"`
	SentAt                int64         `json:"sent_at,omitempty"`
	DeliveredAt           int64         `json:"delivered_at,omitempty"`
	ReadAt                int64         `json:"read_at,omitempty"`
	PlayedAt              int64         `json:"played_at,omitempty"`
	FailedAt              int64         `json:"failed_at,omitempty"`
	RecipientID           string        `json:"recipient_id,omitempty"`
	RecipientUserID       string        `json:"recipient_user_id,omitempty"`
	ParentUserID          string        `json:"parent_user_id,omitempty"`
	RecipientType         string        `json:"recipient_type,omitempty"`
	Conversation          *Conversation `json:"conversation,omitempty"`
	Pricing               *Pricing      `json:"pricing,omitempty"`
	Errors                []Error       `json:"errors,omitempty"`
	BizOpaqueCallbackData string        `json:"biz_opaque_callback_data,omitempty"`
	PhoneNumberID         string        `json:"phone_number_id,omitempty"`
	DisplayPhoneNumber    string        `json:"display_phone_number,omitempty"`
	WABAID                string        `json:"waba_id,omitempty"`
	FirstReceivedAtMillis int64         `json:"first_received_at_ms,omitempty"`
	Participants          []Participant `json:"participants,omitempty"`
	Partition             int32         `json:"partition"`
}

// Conversation is the JSON form of schemas.Conversation.
type Conversation struct {
	ID                  string `json:"id"`
	ExpirationTimestamp int64  `json:"expiration_timestamp,omitempty"`
	OriginType          string `json:"origin_type,omitempty"`
}

// Pricing is the JSON form of schemas.Pricing.
type Pricing struct {
	Billable     *bool  `json:"billable,omitempty"`
	PricingModel string `json:"pricing_model,omitempty"`
	Type         string `json:"type,omitempty"`
	Category     string `json:"category,omitempty"`
}

// Error is the JSON form of schemas.Error.
type Error struct {
	Code    int64  `json:"code"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Details string `json:"details,omitempty"`
	Href    string `json:"href,omitempty"`
}

// Participant is the JSON form of a group participant's sub-state.
type Participant struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	SentAt      int64  `json:"sent_at,omitempty"`
	DeliveredAt int64  `json:"delivered_at,omitempty"`
	ReadAt      int64  `json:"read_at,omitempty"`
	PlayedAt    int64  `json:"played_at,omitempty"`
	FailedAt    int64  `json:"failed_at,omitempty"`
}

// MessageJSON converts a folded state to its API form.
func MessageJSON(v schemas.MessageStatus, partition int32) Message {
	m := Message{
		WAMID:                 v.WAMID,
		Status:                v.Status,
		SentAt:                v.SentAt,
		DeliveredAt:           v.DeliveredAt,
		ReadAt:                v.ReadAt,
		PlayedAt:              v.PlayedAt,
		FailedAt:              v.FailedAt,
		RecipientID:           v.RecipientID,
		RecipientUserID:       v.RecipientUserID,
		ParentUserID:          v.ParentUserID,
		RecipientType:         v.RecipientType,
		BizOpaqueCallbackData: v.BizOpaqueCallbackData,
		PhoneNumberID:         v.PhoneNumberID,
		DisplayPhoneNumber:    v.DisplayPhoneNumber,
		WABAID:                v.WABAID,
		FirstReceivedAtMillis: v.FirstReceivedAt,
		Partition:             partition,
	}
	if c := v.Conversation; c != nil {
		m.Conversation = &Conversation{ID: c.ID, ExpirationTimestamp: c.ExpirationTimestamp, OriginType: c.OriginType}
	}
	if pr := v.Pricing; pr != nil {
		m.Pricing = &Pricing{Billable: pr.Billable, PricingModel: pr.PricingModel, Type: pr.Type, Category: pr.Category}
	}
	for _, e := range v.Errors {
		m.Errors = append(m.Errors, Error(e))
	}
	for _, pt := range v.Participants {
		m.Participants = append(m.Participants, Participant(pt))
	}
	return m
}

// Timeline is the query API's JSON form of a message's timeline.
type Timeline struct {
	WAMID     string          `json:"wamid"`
	Status    string          `json:"status"`
	Partition int32           `json:"partition"`
	Events    []TimelineEvent `json:"events"`
	Anomalies []state.Anomaly `json:"anomalies"`
}

// TimelineEvent is one event folded into a message, in arrival order.
type TimelineEvent struct {
	Offset      int64  `json:"offset"`
	Status      string `json:"status"`
	Participant string `json:"participant,omitempty"`
	Timestamp   int64  `json:"timestamp"`
	ReceivedAt  int64  `json:"received_at_ms,omitempty"`
	Region      string `json:"region,omitempty"`
	// Effect is what folding it did: advanced (raised the status), filled
	// (an earlier timestamp or a new attribute), stale (older than the
	// status: arrived out of order), duplicate (changed nothing).
	Effect string `json:"effect"`
}

// GetTimeline returns every event folded into wamid (as many as the store's
// history keeps, the most recent) and the anomalies they show. The history
// is kept by the instance that owns the message's partition: elsewhere it
// returns ErrNotOwner.
func (p *Processor) GetTimeline(wamid string) (Timeline, error) {
	part, ok := p.Partition(wamid)
	if !ok {
		return Timeline{}, fmt.Errorf("%w: not started", ErrNotOwner)
	}
	p.mu.RLock()
	w := p.owned[part]
	p.mu.RUnlock()
	if w == nil || !w.caughtUp.Load() {
		return Timeline{Partition: part}, fmt.Errorf("%w: partition %d: its owner keeps the timeline", ErrNotOwner, part)
	}
	m, found, err := p.store.Get(part, wamid)
	if err != nil {
		return Timeline{}, fmt.Errorf("%w: get %s: %w", ErrStore, wamid, err)
	}
	if !found {
		return Timeline{Partition: part}, ErrNotFound
	}
	hist, err := p.store.History(part, wamid)
	if err != nil {
		return Timeline{}, fmt.Errorf("%w: history of %s: %w", ErrStore, wamid, err)
	}
	view := m.View(p.store.Policy())
	t := Timeline{WAMID: wamid, Status: view.Status, Partition: part, Events: []TimelineEvent{}, Anomalies: state.Explain(hist, &view)}
	for _, h := range hist {
		t.Events = append(t.Events, TimelineEvent{Offset: h.Offset, Status: h.Status, Participant: h.Participant,
			Timestamp: h.Timestamp, ReceivedAt: h.ReceivedAt, Region: h.Region, Effect: h.Outcome.String()})
	}
	if t.Anomalies == nil {
		t.Anomalies = []state.Anomaly{}
	}
	return t, nil
}

func (p *Processor) serveTimeline(w http.ResponseWriter, r *http.Request) {
	wamid := r.PathValue("wamid")
	t, err := p.GetTimeline(wamid)
	if !p.writeErr(w, wamid, err) {
		writeJSON(w, http.StatusOK, t)
	}
}
