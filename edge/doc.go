// Package edge is wastatus's webhook receiver: the HTTP endpoint Meta calls
// with WhatsApp Cloud API status notifications, and the Kafka producer that
// turns each status object into one record on the events topic.
//
// An edge is stateless. Run one or more per region behind any load balancer;
// every edge writes a message's statuses to the same partition (the key is
// the wamid), and the processor folds them in whatever order they arrive.
//
// # Subscription handshake
//
// When a webhook is configured, Meta sends GET /webhook with hub.mode,
// hub.verify_token and hub.challenge. The receiver answers 200 with the
// challenge as plain text when the mode is "subscribe" and the token equals
// Config.VerifyToken (compared in constant time), and 403 otherwise. With
// no VerifyToken configured every handshake is refused.
//
// # Signatures
//
// Meta signs every POST with X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the raw body under the app secret. The receiver reads the
// body (at most Config.MaxBodyBytes), then checks the signature over exactly
// those bytes with hmac.Equal before it parses anything. Verify is that
// check; Sign makes the header, for the CLI's post command and for tests.
// Config.InsecureSkipSignature turns the check off for local demos.
//
// A replayed POST (a signed body sent again, by Meta's retries or by anyone
// who saw it) is accepted like the first: Meta signs the body alone, with no
// time or nonce, so a replay cannot be told from a retry, and it is harmless
// because the fold is idempotent: its events change no state the first
// copy did not (TestPostReplayedSignature). Errors never quote the secret
// or any part of the signature header.
//
// # Hostile input
//
// Every answer below is decided before anything reaches Kafka, except that a
// bad status object beside good ones never costs them: it goes to the
// dead-letter topic with its reason and the others to the events topic. The
// parsing rules are schemas.ParseWebhook's; testdata/hostile holds a corpus,
// one body per file, and manifest.json the answer each must get
// (TestHostileCorpus), and FuzzPost drives the whole path. In short:
//
//   - the body: empty, truncated, not JSON, not an object, nested past
//     10,000 levels, or an envelope of the wrong shape: 400;
//   - invalid UTF-8: in a status object, that status is dead-lettered
//     (encoding/json would silently replace the bytes); in the envelope's
//     ids, 400; where wastatus reads nothing (inbound messages), ignored;
//   - a status without a wamid, with an id, status or field of the wrong
//     JSON type, or a number that is not a plain integer (1e400, 1,000
//     digits, a fraction): dead-lettered; such numbers and deep nesting in
//     keys wastatus does not read are kept in the raw JSON;
//   - a status with neither recipient_id nor recipient_user_id: accepted,
//     since the fold is keyed by wamid and a missing attribute erases
//     nothing, and Meta changed those fields once already;
//   - payload timestamps in milliseconds, not positive, before 2009, or more
//     than a day after the receive time: dead-lettered, because the fold
//     keeps the earliest time of each status for good, so a wrong one is
//     poison, not noise;
//   - duplicate statuses in one POST: kept, one record each (folding them
//     is the processor's job); 1,000 statuses in 3 MB: one record each;
//   - Content-Type: Meta sends application/json. That (any case, at most
//     charset=utf-8) or none is accepted; anything else, or a
//     Content-Encoding, is answered 415, so that a form post or a
//     compressed body gets a clear answer, not a puzzling 400 or 401.
//
// # Limits
//
// Body size (Config.MaxBodyBytes) and body read time
// (Config.BodyReadTimeout) bound each request; the header size and the
// time to read headers are the http.Server's (MaxHeaderBytes,
// ReadHeaderTimeout), which bound the number of headers as well. Each
// client (its address, or with Config.TrustedProxies the address a trusted
// load balancer names in X-Forwarded-For) has a token bucket of
// Config.ClientRate requests a second and Config.ClientBurst at once,
// checked before anything of the request is read; past it the answer is
// 429 with Retry-After. The defaults never throttle Meta's traffic, even
// when all of it reaches the edge from one load balancer address (see
// DefaultClientRate); the table of buckets is bounded by Config.MaxClients.
// The buckets are golang.org/x/time/rate's, the Go team's token bucket,
// rather than one more of our own.
//
// # From a POST to records
//
// schemas.ParseWebhook makes the body into events, one per statuses[] object,
// in body order, duplicates kept; value.messages[] entries and changes other
// than "messages" are counted and skipped. Each event becomes one record:
//
//	topic   Config.EventsTopic
//	key     the wamid
//	value   the Avro StatusEvent in the Confluent wire format (schemas.Codec)
//	headers region=<Config.Region>
//
// A status object ParseWebhook rejects, and an event whose record would be
// larger than Config.MaxRecordBytes, becomes a dead-letter record instead,
// so one bad status never costs the others:
//
//	topic   Config.DLQTopic
//	key     the wamid, or none when it is missing
//	value   the status object's JSON exactly as it was in the body
//	headers error=<reason>, source=edge, region=<Config.Region>,
//	        received_at=<unix ms>, the envelope's phone_number_id,
//	        display_phone_number and waba_id (each when present),
//	        and truncated=<original length> when the value was cut to fit
//
// The headers keep everything the event would have held beside the status
// object, so `wastatus dlq replay` rebuilds the same event after a fix.
//
// # Answers
//
// The receiver answers 200 only once Kafka has acknowledged every record of
// the POST; Meta retries anything else for up to seven days, and the
// processor folds the duplicates that retries make.
//
//	200  {"accepted":N,"rejected":M}: N event records and M dead letters written
//	400  the body cannot be read, is not JSON, or is not a WhatsApp webhook
//	401  X-Hub-Signature-256 missing, malformed or wrong
//	403  a refused subscription handshake
//	405  a method other than GET or POST (answered by the ServeMux)
//	408  the body was not received within Config.BodyReadTimeout
//	413  a body over Config.MaxBodyBytes
//	415  a Content-Type other than application/json, or a Content-Encoding
//	429  the client is over its rate limit (GET too); Retry-After says when
//	503  a record failed, Kafka did not acknowledge every record within
//	     Config.ProduceTimeout, or the client left first
//
// Errors are JSON, {"error": "..."}; they never contain the secret or the
// signature. An answer sent before the body was read to its end (408, 413,
// 415, 429) closes the connection.
//
// # The producer
//
// The caller owns the *kgo.Client and passes it to New; ProducerOpts lists
// the options it needs: acks from all in-sync replicas, idempotent writes,
// the Java-compatible key partitioner, no linger. New refuses a client that
// cannot keep the 200 promise (ErrClient). A POST produces all its records
// at once and waits for their promises under a context that ends with
// ProduceTimeout or with the request. When that context ends first the POST
// is answered 503 at once: records not yet sent are dropped by franz-go,
// records already sent settle later and are counted then.
//
// # Under an outage
//
// Nothing a POST does waits past ProduceTimeout: kgo's Produce, which blocks
// while the producer holds MaxBufferedRecords, returns when the context
// ends, and the wait for metadata, a producer id, a leader or an answer is
// the promise's, which the POST stops waiting for. So with the broker down,
// slow, or the topic missing, every POST is answered 503 within
// ProduceTimeout (TestOutageBounded503 on kfake; TestOutageRealBroker stops
// and kills a real broker mid-stream), and Meta retries it. A 503 may
// still leave some of its records in Kafka (sent before the timeout,
// acknowledged after); Meta's retry then duplicates them, which the fold
// absorbs. A 200 means acks from all in-sync replicas for every record, by
// an idempotent producer, so an acknowledged status is never lost nor
// written twice by the producer's own retries.
//
// # Goroutines
//
// The package starts none. Each POST runs on its net/http goroutine and
// waits there; franz-go's own goroutines send the records and call the
// promises, which only update counters and close a channel, so a POST that
// was abandoned (timeout, client gone) leaves nothing behind. The Receiver
// holds no lock: counters are atomics and the configuration is read-only.
//
// # Cost of a POST
//
// The edge's own work on a POST is small next to HTTP and Kafka's: a
// single-status POST is read into a pooled buffer (Receiver.bodies; kept
// only when at most 64 KiB), its signature checked with a pooled HMAC
// state keyed once with the secret (hmac.New per POST cost about as much
// as the MAC itself), parsed by schemas.ParseWebhook's one-pass scanner
// (about 3 µs for Meta's sample), encoded with the hand-written Avro codec
// into one buffer for all records of the POST, and produced. Nothing that
// outlives the answer points into the pooled body: ParseWebhook copies what
// it keeps. BenchmarkHandler measures the handler with an in-process
// broker; `wastatus bench --mode edge` the whole process against a baseline
// of net/http and the same producer (docs/PERFORMANCE.md).
//
// # Files
//
//	doc.go        this overview
//	config.go     Config, its defaults (one place) and Validate
//	errors.go     sentinel errors
//	receiver.go   Receiver, New, Register, the GET and POST handlers, body reading and content checks
//	limiter.go    the per-client rate limits: token buckets, client keys, the bounded table
//	produce.go    ProducerOpts, the client check, records and dead letters, acknowledgement
//	signature.go  Sign and Verify (X-Hub-Signature-256), the pooled verifier the Receiver uses
//	metrics.go    Stats, a snapshot of atomic counters; the cmd layer exports them
package edge
