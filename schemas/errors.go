package schemas

import "errors"

// Errors returned by the codec. Each is wrapped with detail; test with
// errors.Is.
var (
	// ErrFraming is returned by the Decode methods when the value is not in
	// the Confluent wire format: shorter than the 5-byte header, or a first
	// byte other than the magic byte 0.
	ErrFraming = errors.New("schemas: not in Confluent wire format")

	// ErrSchemaID is returned by the Decode methods when the header names a
	// schema id other than the one the Codec uses for that record type, and
	// by NewCodec when both record types are given the same id.
	ErrSchemaID = errors.New("schemas: unexpected schema id")

	// ErrDecode is returned by the Decode methods when the bytes after the
	// header are not one valid Avro record of the schema (truncated, corrupt,
	// or followed by trailing bytes).
	ErrDecode = errors.New("schemas: invalid Avro data")

	// ErrEncode is returned by the Append methods when the value cannot be
	// encoded (a nil record).
	ErrEncode = errors.New("schemas: cannot encode")
)

// Errors returned by ParseWebhook for a body that is unusable as a whole. The
// edge answers 400 to both.
var (
	// ErrMalformed is returned when the body is not JSON, not a JSON object,
	// or when its envelope (entry, changes, value, metadata, statuses,
	// messages) does not have the JSON shape Meta documents. It comes with
	// the encoding/json error, when there is one, wrapped too.
	ErrMalformed = errors.New("schemas: malformed webhook body")

	// ErrNotWhatsApp is returned when the body's "object" is not
	// "whatsapp_business_account".
	ErrNotWhatsApp = errors.New("schemas: not a whatsapp_business_account webhook")
)

// Errors carried by a RejectedStatus: why one statuses[] element could not be
// made into a StatusEvent. The other elements of the body are unaffected.
var (
	// ErrStatusNotObject: the statuses[] element is not a JSON object.
	ErrStatusNotObject = errors.New("schemas: status is not a JSON object")

	// ErrNoWAMID: "id" is missing, null, empty or not a string.
	ErrNoWAMID = errors.New("schemas: status has no id")

	// ErrNoStatus: "status" is missing, null, empty or not a string.
	ErrNoStatus = errors.New("schemas: status has no status value")

	// ErrBadTimestamp: "timestamp" is missing, or not a positive integer
	// (a decimal string or a JSON number).
	ErrBadTimestamp = errors.New("schemas: status timestamp is not a positive integer")

	// ErrMillisTimestamp: "timestamp" is 1e11 or more, which as unix seconds
	// is after the year 5000: it was sent in milliseconds.
	ErrMillisTimestamp = errors.New("schemas: status timestamp looks like milliseconds")

	// ErrFutureTimestamp: "timestamp" is more than a day after the time the
	// edge received the body.
	ErrFutureTimestamp = errors.New("schemas: status timestamp is more than a day in the future")

	// ErrBadField: a field that wastatus reads has the wrong JSON type (for
	// example a number where a string belongs, or an integer field that
	// is not an integer). The status is not folded half-understood; its raw
	// JSON goes to the dead-letter topic instead.
	ErrBadField = errors.New("schemas: status field has the wrong JSON type")
)
