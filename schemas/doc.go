// Package schemas holds wastatus's record types, their Avro schemas and codecs,
// and the parser that turns a WhatsApp Cloud API webhook body into events.
// It imports no Kafka client: the edge and the processor do the I/O. Its one
// network peer is an optional Confluent-compatible schema registry, through
// franz-go's HTTP client for it (github.com/twmb/franz-go/pkg/sr).
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
// record. A Codec writes each record type with the current schema under one
// id (IDs): without a registry the fixed StatusEventSchemaID (1) and
// MessageStatusSchemaID (2), or those passed to NewCodec; with one, the ids
// the registry assigned (NewRegistryCodec).
//
// # A hand-written codec for the current schemas
//
// A record framed with one of the Codec's own ids, which is nearly every
// record, is encoded and decoded by a hand-written Avro binary codec for
// exactly the two current schemas (avrobinary.go): field by field, in schema
// order, straight between the typed structs and bytes. goavro
// (github.com/linkedin/goavro/v2) goes through a map[string]any per record
// and per non-null union value, and it dominated the processor's hot paths:
// decoding a typical StatusEvent took 5-9 µs and 79 allocations, 95% of them
// goavro's maps, which capped restore from the current topic and rebuild
// from the events topic well below their targets. The hand-written codec
// encodes without allocating and decodes with about one allocation per
// string and slice of the result (a status or attribute name that is one of
// the known words is a constant; Raw is copied: nothing aliases the input),
// about ten times faster to decode and thirty to encode (bench_test.go
// measures both side by side). The values most events repeat (the
// business's phone number id, display number and WABA id, the region, the
// recipient type, the conversation's origin and the pricing fields) come
// from a per-Codec interner (intern.go) that keeps eight values a field,
// and DecodeStatusEventNoRaw skips the copy of Raw for the processor, which
// never reads it: a StatusEvent decode went from 14 allocations and 1,024
// bytes to 5 and 224, and from 420-540 ns to 245-310. (It kept one value a
// field before, which events from three regions in turn missed every
// time: 284 ns and 7 allocations against 257 and 5 in
// BenchmarkDecodeStatusEventRegions.)
//
// goavro stays for everything that needs a general Avro implementation:
// records of other writer schemas (an earlier version, added with
// AddWriterSchema or found in the registry) are decoded with goavro and
// then resolved (see below), and goavro is the oracle the hand-written codec
// is tested against. It is kept honest three ways: differential tests over
// thousands of random values, the testdata events and edge cases (empty and
// long strings, extreme longs, every optional field present and absent, long
// arrays), where the encoding must be goavro's byte for byte and both must
// decode it to the same value; table tests of corrupt, hostile and
// non-canonical input (arrays in several blocks or with negative counts,
// over-long varints), where both must agree; and fuzz targets that feed
// arbitrary bytes to both decoders (they must agree on success, the error
// sentinel and the value) and arbitrary values to both encoders. A change to
// an .avsc file needs the same change in avrobinary.go; the differential
// tests fail until it is made.
//
// Decoding reads untrusted bytes, so every length and array block count is
// checked against what is left before anything is allocated for it (no
// allocation is proportional to a claimed size, only to the input's), union
// branches, booleans and varints (at most 10 bytes, no 65th bit) are
// checked, and a record must end exactly where the value ends.
//
// For records of other writer schemas, before goavro decodes, a cheap walk
// over the bytes checks the same things (goavro preallocates from a claimed
// array count and would otherwise allocate until it died on one corrupt
// record). The walk is built from the schema the record was written with,
// whichever it is (every Avro type is supported, recursive ones included);
// it refuses data nested more than 32 levels deep, which no wastatus schema
// comes near. No map[string]any leaves this package.
//
// # Schema registry and evolution
//
// With a registry, NewRegistryCodec registers status_event.avsc and
// message_status.avsc under the caller's subjects (TopicSubjects gives
// Confluent's default "<topic>-value" names) and writes with the ids it gets
// back. Registering is idempotent: the registry answers a schema it already
// has with its existing id, so every edge and processor, and every restart,
// writes the same ids; a changed schema becomes the subject's next version.
//
// The compatibility rule is BACKWARD, the registry's default level: a
// release reads everything earlier releases wrote. So a new version of a
// schema may only add a field with a default (for an optional value,
// ["null", T] with default null; for a list, an array with default []) or
// remove a field that had one. Never rename a field (add the new name with
// the old one in its aliases), change a field's type other than by an Avro
// promotion (int to long, float or double; long to float or double; float
// to double; string to bytes), or add a field without a default. The
// registry enforces the level when NewRegistryCodec registers the new
// version (it then fails with ErrRegistry, wrapping the registry's 409);
// without a registry, AddWriterSchema checks the same rules
// (ErrIncompatible). Changes that keep to the rule are FORWARD compatible
// too: an older release reads a newer record by the same resolution,
// skipping the fields it does not know, once it learns the newer id, which
// with a registry it looks up. So with a registry, old and new instances run
// side by side during a rolling upgrade.
//
// Without a registry an id cannot say which version wrote a record, so a
// changed schema must take a new fixed id (change StatusEventSchemaID or
// MessageStatusSchemaID), keep the previous .avsc, and have the release call
// AddWriterSchema with the previous id and schema at startup (testdata/evolution
// holds such a previous version for the tests). Older instances cannot read
// the new id: upgrade every reader of a topic before its writers.
//
// Decoding looks at the id in the header:
//
//   - the Codec's own id for that record type: decoded directly with the
//     current schema, by the hand-written codec;
//   - another id the Codec has met: the writer schema stored for it (built
//     once, then shared by every goroutine);
//   - an unknown id, with a registry: its schema is fetched once with
//     sr.Client.SchemaByID (concurrent decoders of the same id share one
//     request), checked, and stored, readable or not (an id's schema never
//     changes). An id the registry does not have is ErrSchemaID and is not
//     remembered (the registry may be a replica that has not caught up), so
//     each such record asks again;
//   - an unknown id without a registry: ErrSchemaID. AddWriterSchema adds
//     an earlier schema under its id beforehand, for the fixed-id world.
//
// goavro has no schema resolution of its own (it decodes only with the
// schema the data was written with), so a record of an earlier schema is
// decoded with that writer schema and then resolved, by the Avro
// specification's rules, into the current schema's form: fields match by
// name (or a current field's alias), fields the writer lacks take their
// default, fields the current schema dropped are skipped, promotions and
// union branches are applied. Whether a writer schema resolves is settled
// once, when it is added or looked up: ErrIncompatible (wrapped in
// ErrSchemaID when it comes from the registry) names the field that does
// not. The only failures left for decoding time are a value in a union
// branch, or an enum symbol, that the current schema has no match for:
// ErrDecode for the records that use it. Logical types must
// agree, except that a plain long and a timestamp-millis long read as each
// other; schemas with registry references are not followed (ErrSchemaID).
//
// Each Decode error wraps exactly one of ErrFraming, ErrSchemaID, ErrDecode
// and ErrRegistry. The first three mean the record cannot decode: it is
// poison, for the dead-letter topic (an id the registry lacks may, for a
// moment, be one a replica has not caught up with: replaying the dead letters
// recovers such records). ErrRegistry means the registry could
// not be asked (unreachable, timed out, an error status): the record may be
// fine, so the caller should retry or stop, not dead-letter it. It is never
// cached; the next record asks again. DecodeStatusEventContext and
// DecodeMessageStatusContext bound the lookup with a context; the plain
// methods with the sr.Client's HTTP timeout (5 s by default).
//
// # Webhooks
//
// ParseWebhook reads the body Meta POSTs (object, entry[].changes[].value)
// in one pass of a scanner for the documented shape (five times faster than
// encoding/json, six allocations for a one-status body). Any body it cannot
// read exactly as encoding/json would (invalid JSON or UTF-8, wrong types,
// escaped, upper-case or repeated keys) is decided by encoding/json, so
// results and error texts are encoding/json's; a differential fuzz target
// (FuzzScanWebhook) holds the two to that. Each statuses[] element is read
// in isolation from its own bytes, so that a bad one cannot fail the
// others, and keeps those bytes. Nothing downstream parses JSON again: the processor
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
//	codec.go       Codec: Confluent framing, decoding by id, AddWriterSchema,
//	               goavro's native form -> typed structs
//	avrobinary.go  the hand-written Avro binary codec of the current schemas
//	intern.go      one string for each repeated value of the decoded fields
//	registry.go    NewRegistryCodec, Subjects, the lookup of unknown ids
//	avroschema.go  an Avro schema's JSON parsed into a tree (names as goavro's)
//	avrocheck.go   the allocation-free structural check run before goavro decodes
//	resolve.go     Avro schema resolution: an earlier schema's native form to
//	               the current one's
//	webhook.go     ParseWebhook and the webhook's JSON shape
//	*.avsc         the published Avro schemas
//	testdata/      webhook bodies: Meta's samples and the facts they do not show;
//	               evolution/: the previous version of each schema
//	*_test.go      table tests, the random round-trip property (seed logged;
//	               replay with WASTATUS_SEED), the differential tests against
//	               goavro (goavro_test.go holds the oracle), fuzz targets,
//	               benchmarks, examples
//
// Everything here is safe for concurrent use and starts no goroutines: a
// registry lookup runs on the decoding goroutine (through the sr.Client's
// HTTP transport).
package schemas
