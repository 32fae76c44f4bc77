package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
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
// events. Its rules are those of encoding/json decoding the body (see
// decodeWebhook), and so are its results, exactly: a single pass of
// scanWebhook reads bodies of the documented shape, five times faster, and
// the rest take encoding/json (TestScanWebhookRandom and FuzzScanWebhook
// hold the two to the same results). The result shares no memory with body,
// which the caller may reuse.
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
	if w, ok := scanWebhook(body, region, receivedAt); ok {
		return w, nil
	}
	return decodeWebhook(body, region, receivedAt)
}

// decodeWebhook is ParseWebhook by encoding/json: one json.Unmarshal of the
// body, in which each statuses[] element decodes itself, in isolation,
// keeping its exact bytes. It defines what a body means, and decides every
// body that scanWebhook does not read: invalid JSON, a wrong type in the
// envelope, and the like, with encoding/json's own errors.
func decodeWebhook(body []byte, region string, receivedAt int64) (Webhook, error) {
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

// scanWebhook is ParseWebhook's fast path: one pass over the body, without
// reflection, that reads the shape Meta documents and skips the rest. Each
// decoded string is cut from one copy of the body, and each Raw from
// another, so a status costs a few allocations, not one per field.
//
// It returns ok false, having decided nothing, for any body it cannot read
// exactly as decodeWebhook does, which then decides it: invalid JSON, nesting
// past encoding/json's limit, invalid UTF-8, an "object" other than
// "whatsapp_business_account", a value of another JSON type than the
// documented one where wastatus reads (including a statuses[] element that
// is not an object, but not id, status or a timestamp, which are read
// leniently here as there), and, in an object wastatus reads, a key that is
// escaped, not ASCII or has an upper-case letter (encoding/json matches
// keys without regard to case) or a key it reads that appears twice
// (encoding/json merges some of those). Meta sends none of these.
func scanWebhook(body []byte, region string, receivedAt int64) (w Webhook, ok bool) {
	if !utf8.Valid(body) {
		return Webhook{}, false
	}
	s := webhookScan{b: body, region: region, receivedAt: receivedAt}
	s.envelope()
	if s.peek(); s.bail || s.i != len(s.b) {
		return Webhook{}, false
	}
	w = s.w
	switch {
	case s.statuses == 0:
		w.Events = nil
	case w.Events == nil:
		w.Events = []StatusEvent{} // as decodeWebhook makes it: sized for statuses that were all rejected
	}
	if len(w.Rejected) == 0 {
		w.Rejected = nil
	}
	return w, true
}

// maxJSONDepth is encoding/json's limit on nesting, counting the top-level
// value as 1. The scan bails past it, and encoding/json returns its error.
const maxJSONDepth = 10_000

// webhookScan is the state of one scanWebhook. Its methods read the value
// at i, after white space, and leave i after it. Those that read a
// container take its depth d (the top-level object's is 1); skip, and those
// that read a scalar, take the depth of the container they are in. On
// anything they do not read as decodeWebhook would, they set bail and
// return; every loop stops once bail is set.
type webhookScan struct {
	b    []byte
	i    int
	bail bool

	str string // string(b), made on first use: decoded strings are cut from it
	raw []byte // a copy of b, made on first use: each Raw is cut from it

	region     string
	receivedAt int64
	w          Webhook
	statuses   int // statuses[] elements of the "messages" changes
}

// peek skips white space and returns the next byte, or 0 at the end (a
// NUL byte is no JSON token either way).
func (s *webhookScan) peek() byte {
	for ; s.i < len(s.b); s.i++ {
		if c := s.b[s.i]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c
		}
	}
	return 0
}

// envelope reads the top-level object.
func (s *webhookScan) envelope() {
	var seen uint32
	object := false
	for key := range s.object(1) {
		switch string(key) {
		case "object":
			if s.once(&seen, 0) {
				v, present := s.text()
				object = present && v == "whatsapp_business_account"
				if !object {
					s.bail = true // ErrNotWhatsApp, unless the body is malformed: decodeWebhook says which
				}
			}
		case "entry":
			if s.once(&seen, 1) {
				for range s.array(2) {
					s.entry(3)
				}
			}
		default:
			s.skip(1)
		}
	}
	if !object {
		s.bail = true
	}
}

// entry reads one entry[] object. Its id is the WABA id of the statuses
// in it, wherever it stands among the entry's keys.
func (s *webhookScan) entry(d int) {
	ev, rej := len(s.w.Events), len(s.w.Rejected)
	var seen uint32
	var id string
	for key := range s.object(d) {
		switch string(key) {
		case "id":
			if s.once(&seen, 0) {
				id, _ = s.text()
			}
		case "changes":
			if s.once(&seen, 1) {
				for range s.array(d + 1) {
					s.change(d + 2)
				}
			}
		default:
			s.skip(d + 1)
		}
	}
	for i := ev; i < len(s.w.Events); i++ {
		s.w.Events[i].WABAID = id
	}
	for i := rej; i < len(s.w.Rejected); i++ {
		s.w.Rejected[i].WABAID = id
	}
}

// change reads one changes[] object. Its statuses count only when its
// field is "messages", which may come after its value: they are read, and
// dropped at the end when the field is another.
func (s *webhookScan) change(d int) {
	ev, rej := len(s.w.Events), len(s.w.Rejected)
	var seen uint32
	var field string
	statuses, inbound := 0, 0
	for key := range s.object(d) {
		switch string(key) {
		case "field":
			if s.once(&seen, 0) {
				field, _ = s.text()
			}
		case "value":
			if s.once(&seen, 1) && !s.null() {
				statuses, inbound = s.value(d + 1)
			}
		default:
			s.skip(d + 1)
		}
	}
	if field != "messages" {
		s.w.Events, s.w.Rejected = s.w.Events[:ev], s.w.Rejected[:rej]
		s.w.OtherChanges++
		return
	}
	s.statuses += statuses
	s.w.InboundMessages += inbound
}

// value reads a change's value object and returns how many statuses[] and
// messages[] elements it held. Its metadata is copied into the statuses,
// wherever it stands among the value's keys.
func (s *webhookScan) value(d int) (statuses, inbound int) {
	ev, rej := len(s.w.Events), len(s.w.Rejected)
	var seen uint32
	var pni, dpn string
	for key := range s.object(d) {
		switch string(key) {
		case "metadata":
			if s.once(&seen, 0) && !s.null() {
				var mseen uint32
				for key := range s.object(d + 1) {
					switch string(key) {
					case "phone_number_id":
						if s.once(&mseen, 0) {
							pni, _ = s.text()
						}
					case "display_phone_number":
						if s.once(&mseen, 1) {
							dpn, _ = s.text()
						}
					default:
						s.skip(d + 1)
					}
				}
			}
		case "statuses":
			if s.once(&seen, 1) {
				for range s.array(d + 1) {
					s.status(d + 2)
					statuses++
				}
			}
		case "messages":
			if s.once(&seen, 2) {
				for range s.array(d + 1) {
					s.skip(d + 1)
					inbound++
				}
			}
		default:
			s.skip(d)
		}
	}
	for i := ev; i < len(s.w.Events); i++ {
		s.w.Events[i].PhoneNumberID, s.w.Events[i].DisplayPhoneNumber = pni, dpn
	}
	for i := rej; i < len(s.w.Rejected); i++ {
		s.w.Rejected[i].PhoneNumberID, s.w.Rejected[i].DisplayPhoneNumber = pni, dpn
	}
	return statuses, inbound
}

// status reads one statuses[] element into an event, or a rejection when
// check refuses it, as wireStatus.UnmarshalJSON and check do.
func (s *webhookScan) status(d int) {
	s.peek()
	start := s.i
	var st wireStatus
	var conv *wireConversation
	var errs []wireError
	ev := &st.ev
	var seen uint32
	for key := range s.object(d) {
		switch string(key) {
		case "id":
			if s.once(&seen, 0) {
				s.lenientString(&st.id, d)
			}
		case "status":
			if s.once(&seen, 1) {
				s.lenientString(&st.status, d)
			}
		case "timestamp":
			if s.once(&seen, 2) {
				s.integer(&st.timestamp, d)
			}
		case "recipient_id":
			if s.once(&seen, 3) {
				ev.RecipientID, _ = s.text()
			}
		case "recipient_user_id":
			if s.once(&seen, 4) {
				ev.RecipientUserID, _ = s.text()
			}
		case "parent_user_id":
			if s.once(&seen, 5) {
				ev.ParentUserID, _ = s.text()
			}
		case "recipient_type":
			if s.once(&seen, 6) {
				ev.RecipientType, _ = s.text()
			}
		case "recipient_participant_id":
			if s.once(&seen, 7) {
				ev.RecipientParticipantID, _ = s.text()
			}
		case "biz_opaque_callback_data":
			if s.once(&seen, 8) {
				ev.BizOpaqueCallbackData, _ = s.text()
			}
		case "conversation":
			if s.once(&seen, 9) && !s.null() {
				conv = s.conversation(d + 1)
			}
		case "pricing":
			if s.once(&seen, 10) && !s.null() {
				ev.Pricing = s.pricing(d + 1)
			}
		case "errors":
			if s.once(&seen, 11) {
				for range s.array(d + 1) {
					errs = append(errs, s.statusError(d+2))
				}
			}
		default:
			s.skip(d)
		}
	}
	if s.bail {
		return
	}
	ev.Raw = s.rawBytes(start, s.i)
	ev.WAMID = st.id.value()
	ev.Status = st.status.value()
	ev.Timestamp = st.timestamp.v
	if conv != nil {
		st.badInt("conversation.expiration_timestamp", conv.ExpirationTimestamp)
		ev.Conversation = &Conversation{ID: conv.ID, ExpirationTimestamp: conv.ExpirationTimestamp.v, OriginType: conv.Origin.Type}
	}
	if len(errs) > 0 {
		ev.Errors = make([]Error, len(errs))
		for i := range errs {
			e := &errs[i]
			st.badInt("errors.code", e.Code)
			ev.Errors[i] = Error{Code: e.Code.v, Title: e.Title, Message: e.Message, Details: e.ErrorData.Details, Href: e.Href}
		}
	}
	if err := st.check(s.receivedAt, false); err != nil {
		s.w.Rejected = append(s.w.Rejected, RejectedStatus{Raw: ev.Raw, WAMID: ev.WAMID, Err: err})
		return
	}
	ev.Region = s.region
	ev.ReceivedAt = s.receivedAt
	s.w.Events = append(s.w.Events, *ev)
}

// conversation reads a status's conversation object; d is its own depth.
func (s *webhookScan) conversation(d int) *wireConversation {
	c := new(wireConversation)
	var seen uint32
	for key := range s.object(d) {
		switch string(key) {
		case "id":
			if s.once(&seen, 0) {
				c.ID, _ = s.text()
			}
		case "expiration_timestamp":
			if s.once(&seen, 1) {
				s.integer(&c.ExpirationTimestamp, d)
			}
		case "origin":
			if s.once(&seen, 2) && !s.null() {
				c.Origin.Type = s.oneText(d+1, "type")
			}
		default:
			s.skip(d)
		}
	}
	return c
}

// pricing reads a status's pricing object; d is its own depth. Billable
// shares the Pricing's allocation.
func (s *webhookScan) pricing(d int) *Pricing {
	p := new(struct {
		Pricing
		billable bool
	})
	var seen uint32
	for key := range s.object(d) {
		switch string(key) {
		case "billable":
			if s.once(&seen, 0) && !s.null() {
				p.billable = s.boolean()
				p.Billable = &p.billable
			}
		case "pricing_model":
			if s.once(&seen, 1) {
				p.PricingModel, _ = s.text()
			}
		case "type":
			if s.once(&seen, 2) {
				p.Type, _ = s.text()
			}
		case "category":
			if s.once(&seen, 3) {
				p.Category, _ = s.text()
			}
		default:
			s.skip(d)
		}
	}
	return &p.Pricing
}

// statusError reads one errors[] object; d is its own depth.
func (s *webhookScan) statusError(d int) wireError {
	var e wireError
	var seen uint32
	for key := range s.object(d) {
		switch string(key) {
		case "code":
			if s.once(&seen, 0) {
				s.integer(&e.Code, d)
			}
		case "title":
			if s.once(&seen, 1) {
				e.Title, _ = s.text()
			}
		case "message":
			if s.once(&seen, 2) {
				e.Message, _ = s.text()
			}
		case "href":
			if s.once(&seen, 3) {
				e.Href, _ = s.text()
			}
		case "error_data":
			if s.once(&seen, 4) && !s.null() {
				e.ErrorData.Details = s.oneText(d+1, "details")
			}
		default:
			s.skip(d)
		}
	}
	return e
}

// oneText reads the object of depth d of which only the string field name
// is read (conversation.origin.type, errors[].error_data.details),
// skipping the others.
func (s *webhookScan) oneText(d int, name string) string {
	var (
		v    string
		seen uint32
	)
	for key := range s.object(d) {
		if string(key) != name {
			s.skip(d)
			continue
		}
		if s.once(&seen, 0) {
			v, _ = s.text()
		}
	}
	return v
}

// once marks key k of an object as seen, and bails when it already was.
func (s *webhookScan) once(seen *uint32, k uint) bool {
	if *seen&(1<<k) != 0 {
		s.bail = true
		return false
	}
	*seen |= 1 << k
	return true
}

// object ranges over the members of the object at i, of depth d,
// yielding each key when i is at its value; the loop body must read the
// value. A key must be plain (see scanWebhook), or the scan bails.
func (s *webhookScan) object(d int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if d > maxJSONDepth || s.peek() != '{' {
			s.bail = true
			return
		}
		s.i++
		if s.peek() == '}' {
			s.i++
			return
		}
		for {
			key := s.key()
			if s.bail || s.peek() != ':' {
				s.bail = true
				return
			}
			s.i++
			if !yield(key) || s.bail {
				return
			}
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return
			default:
				s.bail = true
				return
			}
		}
	}
}

// key reads an object key that is plain: no escapes, ASCII, no upper case.
func (s *webhookScan) key() []byte {
	if s.peek() != '"' {
		s.bail = true
		return nil
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return s.b[start:i]
		case c < 0x20, c == '\\', c >= 0x80, 'A' <= c && c <= 'Z':
			s.bail = true
			return nil
		}
	}
	s.bail = true
	return nil
}

// array ranges over the elements of the array at i, of depth d, yielding
// when i is at an element; the loop body
// must read it. null is an empty array, as it is to encoding/json when
// the key appears once.
func (s *webhookScan) array(d int) iter.Seq[struct{}] {
	return func(yield func(struct{}) bool) {
		if s.null() {
			return
		}
		if d > maxJSONDepth || s.peek() != '[' {
			s.bail = true
			return
		}
		s.i++
		if s.peek() == ']' {
			s.i++
			return
		}
		for {
			if !yield(struct{}{}) || s.bail {
				return
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return
			default:
				s.bail = true
				return
			}
		}
	}
}

// null reads a null and reports whether there was one.
func (s *webhookScan) null() bool {
	if s.peek() == 'n' {
		s.literal("null")
		return !s.bail
	}
	return false
}

// text reads a string, or a null (present false), as encoding/json decodes
// them into a Go string; anything else bails.
func (s *webhookScan) text() (v string, present bool) {
	switch s.peek() {
	case '"':
		start, end, escaped := s.stringLit()
		if s.bail {
			return "", false
		}
		return s.decode(start, end, escaped), true
	case 'n':
		s.literal("null")
		return "", false
	}
	s.bail = true
	return "", false
}

// decode returns the string literal b[start:end] decoded.
func (s *webhookScan) decode(start, end int, escaped bool) string {
	if escaped {
		return unquote(s.b[start:end])
	}
	if s.str == "" {
		s.str = string(s.b)
	}
	return s.str[start+1 : end-1]
}

// rawBytes returns b[start:end] from the copy of the body.
func (s *webhookScan) rawBytes(start, end int) []byte {
	if s.raw == nil {
		s.raw = bytes.Clone(s.b)
	}
	return s.raw[start:end:end]
}

// lenientString reads any value into a jsonString, as its UnmarshalJSON does.
func (s *webhookScan) lenientString(v *jsonString, d int) {
	switch s.peek() {
	case '"':
		start, end, escaped := s.stringLit()
		if !s.bail {
			v.v, v.state = s.decode(start, end, escaped), jsonOK
		}
	case 'n':
		s.literal("null")
		v.state = jsonAbsent
	default:
		s.skip(d)
		v.state = jsonBad
	}
}

// integer reads any value into a jsonInt, as its UnmarshalJSON does.
func (s *webhookScan) integer(n *jsonInt, d int) {
	if s.peek() == '"' {
		start, end, escaped := s.stringLit()
		switch {
		case s.bail:
			return
		case !escaped:
			v, ok := parseInt(s.b[start+1 : end-1])
			n.v, n.state = v, jsonOK
			if !ok {
				n.v, n.state = 0, jsonBad
			}
		default:
			_ = n.UnmarshalJSON(s.b[start:end])
		}
		return
	}
	start := s.i
	s.skip(d)
	if !s.bail {
		_ = n.UnmarshalJSON(s.b[start:s.i])
	}
}

// boolean reads true or false; anything else bails.
func (s *webhookScan) boolean() bool {
	switch s.peek() {
	case 't':
		s.literal("true")
		return true
	case 'f':
		s.literal("false")
		return false
	}
	s.bail = true
	return false
}

// skip reads any JSON value, an element of a container of depth d, and
// checks it as encoding/json's scanner does.
func (s *webhookScan) skip(d int) {
	switch c := s.peek(); {
	case c == '"':
		s.stringLit()
	case c == '{':
		if d+1 > maxJSONDepth {
			s.bail = true
			return
		}
		s.i++
		if s.peek() == '}' {
			s.i++
			return
		}
		for !s.bail {
			if s.peek() != '"' {
				s.bail = true
				return
			}
			s.stringLit()
			if s.bail || s.peek() != ':' {
				s.bail = true
				return
			}
			s.i++
			s.skip(d + 1)
			if s.bail {
				return
			}
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return
			default:
				s.bail = true
			}
		}
	case c == '[':
		if d+1 > maxJSONDepth {
			s.bail = true
			return
		}
		s.i++
		if s.peek() == ']' {
			s.i++
			return
		}
		for !s.bail {
			s.skip(d + 1)
			if s.bail {
				return
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return
			default:
				s.bail = true
			}
		}
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		s.number()
	default:
		s.bail = true
	}
}

// literal reads lit (true, false or null).
func (s *webhookScan) literal(lit string) {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		s.bail = true
		return
	}
	s.i += len(lit)
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *webhookScan) number() {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		s.bail = true
		return
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || b[i+1] < '0' || b[i+1] > '9' {
			s.bail = true
			return
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.bail = true
			return
		}
		i = digits(b, i)
	}
	s.i = i
}

// digits returns the index of the first byte at or after i that is not a
// decimal digit.
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// stringLit reads a string literal and returns where it starts and ends
// (its quotes included) and whether it holds escapes. It checks what
// encoding/json's scanner checks: no control characters, valid escapes.
func (s *webhookScan) stringLit() (start, end int, escaped bool) {
	b := s.b
	start = s.i
	for i := start + 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return start, i + 1, escaped
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				s.bail = true
				return start, start, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.bail = true
					return start, start, false
				}
				i += 6
			default:
				s.bail = true
				return start, start, false
			}
		case c < 0x20:
			s.bail = true
			return start, start, false
		default:
			i++
		}
	}
	s.bail = true
	return start, start, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
