package schemas

import "errors"

// Errors returned by the codec. Each is wrapped with detail; test with
// errors.Is. Every error of a Decode method wraps exactly one of ErrFraming,
// ErrSchemaID, ErrDecode and ErrRegistry.
var (
	// ErrFraming is returned by the Decode methods when the value is not in
	// the Confluent wire format: shorter than the 5-byte header, or a first
	// byte other than the magic byte 0.
	ErrFraming = errors.New("schemas: not in Confluent wire format")

	// ErrSchemaID is returned by the Decode methods when the header names a
	// schema id that the Codec cannot read as the record type asked for:
	// the other type's id, an id neither its own nor added with
	// AddWriterSchema (without a registry), an id the registry does not have
	// or whose schema is not an Avro schema readable as the current one
	// (then ErrIncompatible is wrapped too). Such a record will never
	// decode: it is poison. Also returned by NewCodec when both record types
	// are given the same id, and by AddWriterSchema for an id that is 0, one
	// of the Codec's own, or already added with another schema.
	ErrSchemaID = errors.New("schemas: unexpected schema id")

	// ErrDecode is returned by the Decode methods when the bytes after the
	// header are not one valid Avro record of the writer schema (truncated,
	// corrupt, or followed by trailing bytes), or use a union branch that
	// the current schema has no match for.
	ErrDecode = errors.New("schemas: invalid Avro data")

	// ErrEncode is returned by the Append methods when the value cannot be
	// encoded (a nil record).
	ErrEncode = errors.New("schemas: cannot encode")

	// ErrIncompatible is returned by AddWriterSchema, and wrapped with
	// ErrSchemaID by the Decode methods for an id found in the registry,
	// when a writer schema is not valid Avro or cannot be read as the
	// current schema by Avro schema resolution: a field the current schema
	// added without a default, a changed type that is not a promotion, a
	// renamed record. The detail names the field.
	ErrIncompatible = errors.New("schemas: writer schema cannot be read as the current schema")

	// ErrRegistry is returned when the schema registry could not be used:
	// by NewRegistryCodec when a registration failed (wrapping the sr
	// client's error), and by the Decode methods when looking up an id the
	// Codec has not seen failed for another reason than the registry not
	// having it (unreachable, timed out, an error status). The record may
	// well be valid: retry it rather than dead-letter it.
	ErrRegistry = errors.New("schemas: schema registry unavailable")

	// ErrSubjects is returned by Subjects.Validate and NewRegistryCodec when
	// a subject is empty or both schemas are given the same one.
	ErrSubjects = errors.New("schemas: invalid schema registry subjects")
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
