package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Webhook is what ParseWebhook made of one POST body.
type Webhook struct {
	// Events holds one event per valid status object, in body order.
	// Duplicates are kept: folding them is the processor's job.
	Events []StatusEvent
	// Rejected holds the status objects that could not be made into an
	// event, in body order. The other statuses are unaffected.
	Rejected []RejectedStatus
	// InboundMessages counts value.messages[] entries (inbound messages, not
	// wastatus's input): counted and skipped.
	InboundMessages int
	// OtherChanges counts changes whose field is not "messages": skipped.
	OtherChanges int
}

// RejectedStatus is one statuses[] element that could not be made into a
// StatusEvent. The edge sends Raw to the dead-letter topic.
type RejectedStatus struct {
	Raw   []byte // the element's JSON exactly as it appeared in the body
	WAMID string // its "id" when that is a non-empty string, else ""
	Err   error  // wraps one of ErrStatusNotObject, ErrNoWAMID, ErrNoStatus, ErrBadTimestamp, ErrMillisTimestamp, ErrFutureTimestamp, ErrBadField

	// The envelope the element came in, as a StatusEvent would have had it,
	// so that a dead letter can be replayed into an event as complete as the
	// original.
	PhoneNumberID      string
	DisplayPhoneNumber string
	WABAID             string
}

// Limits on a status's payload timestamp. A wrong timestamp is poison, not
// noise: the fold keeps the earliest time seen for each status, so one
// timestamp in milliseconds, or from 1970, would stand as that status's time
// for good. Such a status goes to the dead-letter topic instead.
const (
	// minSeconds is 2009-01-01T00:00:00Z, the year WhatsApp began: an
	// earlier timestamp is another unit or a bug, never a WhatsApp event.
	minSeconds = 1_230_768_000
	// maxSeconds: a timestamp of 1e11 or more (year 5138 in seconds) was
	// sent in milliseconds.
	maxSeconds = 1e11
	// maxAheadSeconds: how far past the receive time a timestamp may be.
	maxAheadSeconds = 24 * 60 * 60
)

// ParseWebhook parses the JSON body of a WhatsApp Cloud API webhook POST into
// events, in one json.Unmarshal of the body (each statuses[] element decodes
// itself there, in isolation, keeping its exact bytes).
//
// region and receivedAt (unix milliseconds, the edge's receive time) are
// copied into every event. receivedAt also bounds the payload timestamps: one
// more than a day after it is rejected (ErrFutureTimestamp); receivedAt <= 0
// turns that check off. A timestamp before 2009 (ErrBadTimestamp) or of 1e11
// and more (ErrMillisTimestamp) is rejected whatever receivedAt is.
//
// Meta sends UTF-8. A statuses[] element that is not valid UTF-8 is rejected
// (ErrBadField), since encoding/json would silently replace its bad bytes;
// invalid UTF-8 in the envelope's ids makes the body ErrMalformed, and
// elsewhere (inbound messages, keys wastatus does not read) it is ignored.
//
// The error is non-nil only when the body as a whole is unusable: ErrMalformed
// (not JSON, nested more than encoding/json's 10,000 levels, or an envelope
// of the wrong shape) or ErrNotWhatsApp. A bad statuses[] element only adds
// a RejectedStatus. Only changes whose field is "messages" are read; others
// are counted in OtherChanges.
func ParseWebhook(body []byte, region string, receivedAt int64) (Webhook, error) {
	if firstByte(body) != '{' {
		return Webhook{}, fmt.Errorf("%w: body is not a JSON object", ErrMalformed)
	}
	var env wireEnvelope
	err := json.Unmarshal(body, &env)
	if _, ok := errors.AsType[*json.SyntaxError](err); ok {
		return Webhook{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if env.Object != "whatsapp_business_account" {
		return Webhook{}, fmt.Errorf("%w: object is %q", ErrNotWhatsApp, env.Object)
	}
	if err != nil {
		return Webhook{}, malformedError{err}
	}
	// Valid UTF-8 is the rule; checking the whole body first keeps the
	// per-element checks off that path.
	badUTF8 := !utf8.Valid(body)
	if badUTF8 {
		if err := env.checkUTF8(); err != nil {
			return Webhook{}, err
		}
	}

	var w Webhook
	n := 0
	for i := range env.Entry {
		for j := range env.Entry[i].Changes {
			if env.Entry[i].Changes[j].Field == "messages" {
				n += len(env.Entry[i].Changes[j].Value.Statuses)
			}
		}
	}
	if n > 0 {
		w.Events = make([]StatusEvent, 0, n)
	}
	for i := range env.Entry {
		entry := &env.Entry[i]
		for j := range entry.Changes {
			change := &entry.Changes[j]
			if change.Field != "messages" {
				w.OtherChanges++
				continue
			}
			v := &change.Value
			w.InboundMessages += len(v.Messages)
			for k := range v.Statuses {
				st := &v.Statuses[k]
				if err := st.check(receivedAt, badUTF8); err != nil {
					w.Rejected = append(w.Rejected, RejectedStatus{
						Raw: st.ev.Raw, WAMID: st.ev.WAMID, Err: err,
						PhoneNumberID:      v.Metadata.PhoneNumberID,
						DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber,
						WABAID:             entry.ID,
					})
					continue
				}
				ev := st.ev
				ev.PhoneNumberID = v.Metadata.PhoneNumberID
				ev.DisplayPhoneNumber = v.Metadata.DisplayPhoneNumber
				ev.WABAID = entry.ID
				ev.Region = region
				ev.ReceivedAt = receivedAt
				w.Events = append(w.Events, ev)
			}
		}
	}
	return w, nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// The body's envelope. Only the keys wastatus reads are declared; a key of
// the wrong JSON type here makes the whole body ErrMalformed.
type wireEnvelope struct {
	Object string      `json:"object"`
	Entry  []wireEntry `json:"entry"`
}

type wireEntry struct {
	ID      string       `json:"id"`
	Changes []wireChange `json:"changes"`
}

// checkUTF8 returns ErrMalformed when an id of the envelope that events
// carry was not valid UTF-8 in the body: encoding/json decoded its bad bytes
// as U+FFFD, which no id holds.
func (env *wireEnvelope) checkUTF8() error {
	for i := range env.Entry {
		e := &env.Entry[i]
		bad := ""
		switch {
		case strings.ContainsRune(e.ID, utf8.RuneError):
			bad = "entry.id"
		default:
			for j := range e.Changes {
				m := &e.Changes[j].Value.Metadata
				switch {
				case strings.ContainsRune(m.PhoneNumberID, utf8.RuneError):
					bad = "metadata.phone_number_id"
				case strings.ContainsRune(m.DisplayPhoneNumber, utf8.RuneError):
					bad = "metadata.display_phone_number"
				}
			}
		}
		if bad != "" {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, bad)
		}
	}
	return nil
}

type wireChange struct {
	Field string    `json:"field"`
	Value wireValue `json:"value"`
}

type wireValue struct {
	Metadata struct {
		PhoneNumberID      string `json:"phone_number_id"`
		DisplayPhoneNumber string `json:"display_phone_number"`
	} `json:"metadata"`
	Statuses []wireStatus `json:"statuses"`
	Messages []skipped    `json:"messages"`
}

// skipped is a JSON value that is counted and not read.
type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// wireStatus is one statuses[] element. It decodes itself in isolation so that
// one bad element never fails the body: UnmarshalJSON always returns nil and
// keeps what went wrong for check.
type wireStatus struct {
	ev        StatusEvent // the status's own fields, and Raw
	notObject bool
	id        jsonString
	status    jsonString
	timestamp jsonInt
	fieldErr  error // the first field of the wrong JSON type
}

// wireStatusFields is the JSON shape of a status object. id, status and
// timestamp never fail to decode, so that a wrong type elsewhere still leaves
// them readable for the RejectedStatus.
type wireStatusFields struct {
	ID                     *jsonString       `json:"id"`
	Status                 *jsonString       `json:"status"`
	Timestamp              *jsonInt          `json:"timestamp"`
	RecipientID            string            `json:"recipient_id"`
	RecipientUserID        string            `json:"recipient_user_id"`
	ParentUserID           string            `json:"parent_user_id"`
	RecipientType          string            `json:"recipient_type"`
	RecipientParticipantID string            `json:"recipient_participant_id"`
	Conversation           *wireConversation `json:"conversation"`
	Pricing                *wirePricing      `json:"pricing"`
	Errors                 []wireError       `json:"errors"`
	BizOpaqueCallbackData  string            `json:"biz_opaque_callback_data"`
}

type wireConversation struct {
	ID                  string  `json:"id"`
	ExpirationTimestamp jsonInt `json:"expiration_timestamp"`
	Origin              struct {
		Type string `json:"type"`
	} `json:"origin"`
}

type wirePricing struct {
	Billable     *bool  `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Type         string `json:"type"`
	Category     string `json:"category"`
}

type wireError struct {
	Code      jsonInt `json:"code"`
	Title     string  `json:"title"`
	Message   string  `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
	Href string `json:"href"`
}

func (s *wireStatus) UnmarshalJSON(b []byte) error {
	s.ev.Raw = bytes.Clone(b) // b is only valid during the call
	if b[0] != '{' {
		s.notObject = true
		return nil
	}
	f := wireStatusFields{ID: &s.id, Status: &s.status, Timestamp: &s.timestamp}
	if err := json.Unmarshal(b, &f); err != nil {
		s.fieldErr = fieldError(err)
	}
	ev := &s.ev
	ev.WAMID = s.id.value()
	ev.Status = s.status.value()
	ev.Timestamp = s.timestamp.v
	ev.RecipientID = f.RecipientID
	ev.RecipientUserID = f.RecipientUserID
	ev.ParentUserID = f.ParentUserID
	ev.RecipientType = f.RecipientType
	ev.RecipientParticipantID = f.RecipientParticipantID
	ev.BizOpaqueCallbackData = f.BizOpaqueCallbackData
	if c := f.Conversation; c != nil {
		s.badInt("conversation.expiration_timestamp", c.ExpirationTimestamp)
		ev.Conversation = &Conversation{ID: c.ID, ExpirationTimestamp: c.ExpirationTimestamp.v, OriginType: c.Origin.Type}
	}
	if p := f.Pricing; p != nil {
		ev.Pricing = &Pricing{Billable: p.Billable, PricingModel: p.PricingModel, Type: p.Type, Category: p.Category}
	}
	if len(f.Errors) > 0 {
		ev.Errors = make([]Error, len(f.Errors))
		for i := range f.Errors {
			e := &f.Errors[i]
			s.badInt("errors.code", e.Code)
			ev.Errors[i] = Error{Code: e.Code.v, Title: e.Title, Message: e.Message, Details: e.ErrorData.Details, Href: e.Href}
		}
	}
	return nil
}

func (s *wireStatus) badInt(field string, n jsonInt) {
	if n.state == jsonBad && s.fieldErr == nil {
		s.fieldErr = fmt.Errorf("%w: %s is not an integer", ErrBadField, field)
	}
}

// check returns why the status cannot be an event, or nil. checkUTF8 says
// whether the body held invalid UTF-8 somewhere, so that the element's own
// bytes need checking.
func (s *wireStatus) check(receivedAt int64, checkUTF8 bool) error {
	switch {
	case s.notObject:
		return ErrStatusNotObject
	case checkUTF8 && !utf8.Valid(s.ev.Raw):
		return fmt.Errorf("%w: the status object is not valid UTF-8", ErrBadField)
	case s.id.state == jsonBad:
		return fmt.Errorf("%w: id is not a string", ErrNoWAMID)
	case s.ev.WAMID == "":
		return ErrNoWAMID
	case s.status.state == jsonBad:
		return fmt.Errorf("%w: status is not a string", ErrNoStatus)
	case s.ev.Status == "":
		return ErrNoStatus
	case s.timestamp.state == jsonAbsent:
		return fmt.Errorf("%w: timestamp is missing", ErrBadTimestamp)
	case s.timestamp.state == jsonBad:
		return fmt.Errorf("%w: timestamp is not a decimal integer of at most 19 digits", ErrBadTimestamp)
	case s.ev.Timestamp <= 0:
		return fmt.Errorf("%w: %d is not positive", ErrBadTimestamp, s.ev.Timestamp)
	case s.ev.Timestamp < minSeconds:
		return fmt.Errorf("%w: %d is before 2009, when WhatsApp began", ErrBadTimestamp, s.ev.Timestamp)
	case s.ev.Timestamp >= maxSeconds:
		return fmt.Errorf("%w: %d", ErrMillisTimestamp, s.ev.Timestamp)
	case receivedAt > 0 && s.ev.Timestamp > receivedAt/1000+maxAheadSeconds:
		return fmt.Errorf("%w: %d, received at %d ms", ErrFutureTimestamp, s.ev.Timestamp, receivedAt)
	case s.fieldErr != nil:
		return s.fieldErr
	}
	return nil
}

// fieldError turns encoding/json's type error in a status into ErrBadField.
func fieldError(err error) error {
	return fmt.Errorf("%w: %s", ErrBadField, typeErrorText(err))
}

// malformedError is ErrMalformed for an envelope of the wrong shape. It wraps
// the encoding/json error, but its message names JSON fields and types, not
// this package's Go types: the edge may show it to the sender.
type malformedError struct{ err error }

func (e malformedError) Error() string   { return ErrMalformed.Error() + ": " + typeErrorText(e.err) }
func (e malformedError) Unwrap() []error { return []error{ErrMalformed, e.err} }

// typeErrorText describes an encoding/json type error in JSON terms, as
// "entry.changes is a JSON string, want array".
func typeErrorText(err error) string {
	te, ok := errors.AsType[*json.UnmarshalTypeError](err)
	if !ok {
		return err.Error()
	}
	field := te.Field
	if field == "" {
		field = "value"
	}
	want := "another type"
	if t := te.Type; t != nil {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			want = "array"
		case reflect.Struct, reflect.Map:
			want = "object"
		case reflect.String:
			want = "string"
		case reflect.Bool:
			want = "boolean"
		}
	}
	return fmt.Sprintf("%s is a JSON %s, want %s", field, te.Value, want)
}

// jsonState says what a lenient JSON field held.
type jsonState uint8

const (
	jsonAbsent jsonState = iota // missing or null
	jsonOK
	jsonBad // the wrong JSON type or form
)

// jsonString is a JSON string field that records a wrong type instead of
// failing the decode.
type jsonString struct {
	v     string
	state jsonState
}

func (s *jsonString) value() string {
	if s.state != jsonOK {
		return ""
	}
	return s.v
}

func (s *jsonString) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		s.state = jsonAbsent
	case b[0] == '"':
		s.v, s.state = unquote(b), jsonOK
	default:
		s.state = jsonBad
	}
	return nil
}

// unquote decodes a JSON string literal that the caller knows is valid.
func unquote(b []byte) string {
	inner := b[1 : len(b)-1]
	for _, c := range inner {
		if c == '\\' || c >= 0x80 {
			// Escapes, or non-ASCII that encoding/json checks as UTF-8.
			var s string
			if err := json.Unmarshal(b, &s); err != nil {
				return ""
			}
			return s
		}
	}
	return string(inner)
}

// jsonInt is an integer that Meta sends either as a decimal string
// ("1750030073") or as a JSON number. Only plain integers are accepted: an
// optional minus sign and digits, no fraction or exponent. A wrong form is
// recorded instead of failing the decode.
type jsonInt struct {
	v     int64
	state jsonState
}

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		n.state = jsonAbsent
		return nil
	}
	digits := b
	if b[0] == '"' {
		digits = []byte(unquote(b))
	}
	v, ok := parseInt(digits)
	if !ok {
		n.v, n.state = 0, jsonBad
		return nil
	}
	n.v, n.state = v, jsonOK
	return nil
}

// parseInt parses an optional '-' and 1 to 19 decimal digits into an int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	switch {
	case neg && u <= 1<<63:
		return -int64(u), true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}
