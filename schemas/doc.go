// Package schemas holds wastatus's record types, their Avro schemas and codecs,
// and the parser that turns a WhatsApp Cloud API webhook body into events.
// It imports no Kafka client: the edge and the processor do the I/O.
//
// # Records
//
// Two records cross Kafka, each described by an Avro schema that is the
// published contract with other teams (embedded with go:embed and returned by
// StatusEventSchema and MessageStatusSchema):
//
//   - StatusEvent (status_event.avsc): one status object of a webhook, as the
//     edge received it, with its raw JSON. Topic whatsapp.status.events, key
//     the wamid.
//   - MessageStatus (message_status.avsc): the whole folded state of one
//     message, written by the processor. Topic whatsapp.status.current
//     (compacted), key the wamid.
//
// In the Go types an optional string is "" when absent, an optional number 0
// and Pricing.Billable nil; all three are Avro null on the wire, so "" and
// null are the same value. Empty slices decode as nil.
//
// # Wire format
//
// Values use the Confluent wire format that schema-registry tooling reads: the
// magic byte 0, the schema id as 4 big-endian bytes, then the Avro binary
// record. Without a registry the ids are StatusEventSchemaID and
// MessageStatusSchemaID; with one, pass the registered ids in IDs. A Codec
// decodes only its own ids (ErrSchemaID otherwise): there is no schema
// resolution between versions.
//
// A Codec compiles each schema once with goavro (github.com/linkedin/goavro/v2)
// and converts the typed structs to and from goavro's native maps; no
// map[string]any leaves this package. Before goavro decodes, a cheap walk over
// the bytes checks that every length and array count fits in what is left, so
// a corrupt record is ErrDecode instead of a multi-gigabyte allocation.
//
// # Webhooks
//
// ParseWebhook reads the body Meta POSTs (object, entry[].changes[].value)
// in one encoding/json decode; each statuses[] element decodes itself in
// isolation from its own bytes, so that a bad one cannot fail the others, and
// keeps those bytes. Nothing downstream parses JSON again: the processor
// reads Avro. Each statuses[] element of a change whose field is
// "messages" becomes either a StatusEvent (in body order, duplicates kept,
// unknown status values kept for the processor to dead-letter) or a
// RejectedStatus carrying its exact raw bytes and a wrapped sentinel error
// saying why. Only a body that is unusable as a whole is an error
// (ErrMalformed, ErrNotWhatsApp). Inbound messages[] and changes of other
// fields are counted and skipped.
//
// Payload timestamps are unix seconds, sent as a decimal string or a JSON
// number. A timestamp that is not a positive integer, that looks like
// milliseconds, or that is more than a day after the receive time is
// rejected. No clock is read: the receive time is the caller's.
//
// # Files
//
//	doc.go         this overview
//	errors.go      sentinel errors
//	types.go       StatusEvent, MessageStatus and their parts
//	schema.go      the embedded .avsc files and default schema ids
//	codec.go       Codec: Confluent framing and typed <-> goavro conversion
//	avrocheck.go   the allocation-free structural check run before decoding
//	webhook.go     ParseWebhook and the webhook's JSON shape
//	*.avsc         the published Avro schemas
//	testdata/      webhook bodies: Meta's samples and the facts they do not show
//	*_test.go      table tests, the random round-trip property (seed logged;
//	               replay with WASTATUS_SEED), fuzz targets, benchmarks, examples
//
// Everything here is safe for concurrent use and starts no goroutines.
package schemas
