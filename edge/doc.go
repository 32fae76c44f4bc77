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
//	        and truncated=<original length> when the value was cut to fit
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
//	413  a body over Config.MaxBodyBytes
//	503  a record failed, Kafka did not acknowledge every record within
//	     Config.ProduceTimeout, or the client left first
//
// Errors are JSON, {"error": "..."}; they never contain the secret.
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
// # Goroutines
//
// The package starts none. Each POST runs on its net/http goroutine and
// waits there; franz-go's own goroutines send the records and call the
// promises, which only update counters and close a channel, so a POST that
// was abandoned (timeout, client gone) leaves nothing behind. The Receiver
// holds no lock: counters are atomics and the configuration is read-only.
//
// # Files
//
//	doc.go        this overview
//	config.go     Config, its defaults (one place) and Validate
//	errors.go     sentinel errors
//	receiver.go   Receiver, New, Register and the GET and POST handlers
//	produce.go    ProducerOpts, the client check, records and dead letters, acknowledgement
//	signature.go  Sign and Verify (X-Hub-Signature-256)
//	metrics.go    Stats, a snapshot of atomic counters; the cmd layer exports them
package edge
