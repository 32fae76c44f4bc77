package processor

import "errors"

var (
	// ErrConfig is returned by Config.Validate and New for an unusable
	// configuration.
	ErrConfig = errors.New("processor: invalid config")

	// ErrPartitionMismatch is returned by Run at start when the events and
	// current topics have different partition counts: the current topic is
	// written to the same partition number as its input, so the counts must
	// match.
	ErrPartitionMismatch = errors.New("processor: events and current topics differ in partition count")

	// ErrNotOwner is returned by Get for a message whose partition this
	// instance does not own.
	ErrNotOwner = errors.New("processor: partition not owned by this instance")

	// ErrNotFound is returned by Get for a message with no state.
	ErrNotFound = errors.New("processor: message not found")

	// ErrProduce is returned by Run when an output record could not be
	// written; the transaction was aborted, nothing of the batch was stored,
	// and a restart reads it again.
	ErrProduce = errors.New("processor: produce failed")

	// ErrTransaction is returned by Run when a transaction could not be
	// ended for a reason other than a rebalance (those are retried): the
	// transactional id was fenced by another instance, or the broker kept
	// failing. Nothing of the batch was stored; a restart reads it again.
	ErrTransaction = errors.New("processor: transaction failed")

	// ErrTopicRecreated is returned by Run when the events topic was deleted
	// and created again while it ran. The state folded from the old topic
	// is never served: at the next start the store is dropped and the new
	// topic folded from its start.
	ErrTopicRecreated = errors.New("processor: events topic was recreated")

	// ErrStore is returned by Run when the state store fails, or the schema
	// registry cannot be reached to decode a record; the processor stops
	// rather than serve or emit wrong state, or dead-letter a good record.
	ErrStore = errors.New("processor: state store failed")

	// errNotMember: the group coordinator does not list this client's
	// member (it is joining, or was fenced and rejoins), so nothing can be
	// concluded from its description.
	errNotMember = errors.New("processor: this member is not in the group's description")
)
