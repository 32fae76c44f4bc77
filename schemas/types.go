package schemas

// StatusEvent is one status object of a WhatsApp webhook, as an edge writes it
// to the events topic (schema status_event.avsc). Optional strings are "" when
// absent and optional numbers 0; they are encoded as Avro null.
type StatusEvent struct {
	WAMID                  string
	Status                 string // lowercase, possibly a value wastatus does not know
	Timestamp              int64  // payload time, unix seconds
	RecipientID            string
	RecipientUserID        string
	ParentUserID           string
	RecipientType          string // "individual", "group" or ""
	RecipientParticipantID string // group messages only
	Conversation           *Conversation
	Pricing                *Pricing
	Errors                 []Error
	BizOpaqueCallbackData  string
	PhoneNumberID          string
	DisplayPhoneNumber     string
	WABAID                 string
	Region                 string
	ReceivedAt             int64  // edge receive time, unix milliseconds
	Raw                    []byte // the status object's JSON as it appeared in the body
}

// Conversation is a status's conversation object.
type Conversation struct {
	ID                  string
	ExpirationTimestamp int64 // unix seconds, 0 when absent
	OriginType          string
}

// Pricing is a status's pricing object. Billable is nil when absent.
type Pricing struct {
	Billable     *bool
	PricingModel string
	Type         string
	Category     string
}

// Error is one entry of a failed status's errors array.
type Error struct {
	Code    int64
	Title   string
	Message string
	Details string // error_data.details
	Href    string
}

// MessageStatus is the complete folded state of one message (schema
// message_status.avsc): the value of the current-status topic. Timestamps are
// unix seconds, 0 when that status was never seen.
type MessageStatus struct {
	WAMID                 string
	Status                string
	SentAt                int64
	DeliveredAt           int64
	ReadAt                int64
	PlayedAt              int64
	FailedAt              int64
	RecipientID           string
	RecipientUserID       string
	ParentUserID          string
	RecipientType         string
	Conversation          *Conversation
	Pricing               *Pricing
	Errors                []Error
	BizOpaqueCallbackData string
	PhoneNumberID         string
	DisplayPhoneNumber    string
	WABAID                string
	FirstReceivedAt       int64         // unix milliseconds, 0 when unknown
	Participants          []Participant // sorted by ID; empty unless a group message
	Sources               []AttributeSource
}

// Participant is one group participant's sub-state.
type Participant struct {
	ID          string
	Status      string
	SentAt      int64
	DeliveredAt int64
	ReadAt      int64
	PlayedAt    int64
	FailedAt    int64
}

// AttributeSource says which event an attribute of a MessageStatus was taken
// from: the status and payload timestamp of that event. It is what lets a
// restored state keep folding exactly as the original would.
type AttributeSource struct {
	Attribute string
	Status    string
	Timestamp int64
}
