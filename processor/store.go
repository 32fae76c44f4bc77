package processor

import "github.com/wastatus/wastatus/state"

// Store is what the processor needs of its state store. *state.Store is the
// implementation; the interface keeps the processor's dependency small.
type Store interface {
	NewBatch(partition int32) *state.Batch
	// NewLoadBatch is a batch for filling an empty partition (restores and
	// rebuilds): it skips the lookups of messages it has not written.
	NewLoadBatch(partition int32, keys int) (*state.Batch, error)
	// NewLoader fills an empty partition from states in no order (a
	// restore) by ingesting sorted sstables, around Pebble's write path.
	NewLoader(partition int32, runBytes int) (*state.Loader, error)
	Get(partition int32, wamid string) (state.Message, bool, error)
	History(partition int32, wamid string) ([]state.HistoryEntry, error)
	NextOffset(partition int32) (int64, bool, error)
	DropPartition(partition int32) error
	// Policy is the failed-after-delivered policy the store folds with; the
	// processor derives every emitted status with it too.
	Policy() state.Policy
	// Err is the store's failure (a full disk, corruption), nil while it
	// is healthy: a failed store serves no reads.
	Err() error
	MetaStore
}

// MetaStore keeps store-wide metadata: the processor's instance id and the
// ids of the topics the state was folded from.
type MetaStore interface {
	Meta(name string) ([]byte, bool, error)
	SetMeta(name string, value []byte) error
}

var _ Store = (*state.Store)(nil)
