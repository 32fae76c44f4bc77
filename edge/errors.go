package edge

import "errors"

var (
	// ErrConfig is returned by Config.Validate and New for an unusable
	// configuration, and by New for a nil codec.
	ErrConfig = errors.New("edge: invalid config")

	// ErrClient is returned by New when the Kafka client cannot give the
	// receiver's guarantee: a nil client, acks other than all in-sync
	// replicas, idempotence disabled, a transactional id, manual flushing, a
	// default produce topic that overrides the record's, or a batch limit
	// smaller than Config.MaxRecordBytes plus record overhead. ProducerOpts
	// gives a client that passes.
	ErrClient = errors.New("edge: unsuitable kafka client")

	// ErrSignatureMissing is returned by Verify when the request carries no
	// X-Hub-Signature-256 header. The receiver answers 401.
	ErrSignatureMissing = errors.New("edge: signature missing")

	// ErrSignatureMalformed is returned by Verify when the header is not
	// "sha256=" followed by 64 hexadecimal digits. The receiver answers 401.
	ErrSignatureMalformed = errors.New("edge: signature malformed")

	// ErrSignatureMismatch is returned by Verify when the signature is not
	// the HMAC-SHA256 of the body under the app secret, or when the secret
	// is empty. The receiver answers 401.
	ErrSignatureMismatch = errors.New("edge: signature mismatch")

	// ErrRecordTooLarge is the reason written in the "error" header of a
	// dead-letter record for a status whose event record would exceed
	// Config.MaxRecordBytes. Such a status is not written to the events
	// topic: Kafka would refuse it and Meta would retry it for a week.
	ErrRecordTooLarge = errors.New("edge: record too large")

	// ErrEncode is the reason written in the "error" header of a
	// dead-letter record for a status the codec could not encode.
	ErrEncode = errors.New("edge: cannot encode status event")

	// ErrRateLimited is the error of a 429: the client made more requests
	// than Config.ClientRate and Config.ClientBurst allow. The answer's
	// Retry-After header says when it may try again.
	ErrRateLimited = errors.New("edge: too many requests from this client")

	// ErrContentType is wrapped by the error of a 415: a Content-Type other
	// than application/json (with at most charset=utf-8), or a
	// Content-Encoding other than identity.
	ErrContentType = errors.New("edge: unsupported content type")

	// ErrBodyTimeout is the error of a 408: the body was not received
	// within Config.BodyReadTimeout.
	ErrBodyTimeout = errors.New("edge: body not received")

	// ErrNotAcknowledged wraps the reason a POST was answered 503: Kafka
	// failed a record, did not acknowledge every record within
	// Config.ProduceTimeout, or the client went away first. It appears in
	// logs and in the 503 body.
	ErrNotAcknowledged = errors.New("edge: kafka did not acknowledge every record")
)
