package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/schemas"
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
//	GET /v1/messages/{wamid}  the current folded state as JSON; 404 unknown
//	GET /healthz              200 while the process serves
//	GET /readyz               200 once every owned partition caught up
func (p *Processor) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/messages/{wamid}", p.serveMessage)
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

func (p *Processor) serveMessage(w http.ResponseWriter, r *http.Request) {
	wamid := r.PathValue("wamid")
	view, part, err := p.Get(wamid)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{Error: "no status seen for this message", WAMID: wamid})
	case errors.Is(err, ErrNotOwner):
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: err.Error(), WAMID: wamid})
	case err != nil:
		p.log.Error("get failed", "wamid", wamid, "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Error: "state store error", WAMID: wamid})
	default:
		writeJSON(w, http.StatusOK, MessageJSON(view, part))
	}
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
