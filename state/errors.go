package state

import "errors"

// Sentinel errors. Functions wrap them with %w and context; test for them
// with errors.Is.
var (
	// ErrUnknownStatus is returned by ParseStatus, and by Message.Apply and
	// Batch.Apply, for a status value that is not one of sent, delivered,
	// read, played or failed. Such events are never folded; the processor
	// sends them to the dead-letter topic.
	ErrUnknownStatus = errors.New("state: unknown status")

	// ErrUnknownPolicy is returned by ParsePolicy and Options.Validate for a
	// policy that is neither failed-wins nor delivery-wins.
	ErrUnknownPolicy = errors.New("state: unknown policy")

	// ErrInvalidEvent is returned by Message.Apply and Batch.Apply for an
	// event that cannot be folded: an empty wamid or a payload timestamp
	// that is not positive. Nothing is changed.
	ErrInvalidEvent = errors.New("state: invalid event")

	// ErrWAMIDMismatch is returned by Message.Apply and Message.Join when the
	// event or the other state is about a different message. Nothing is
	// changed.
	ErrWAMIDMismatch = errors.New("state: wamid mismatch")

	// ErrInvalidView is returned by FromView for a MessageStatus that View
	// cannot have produced: no wamid, no timestamp, unknown statuses,
	// top-level fields that are not the join of the participants, or an
	// attribute without its source (or a source without its attribute).
	ErrInvalidView = errors.New("state: invalid view")

	// ErrCorrupt is returned by Message.UnmarshalBinary, and by the Store for
	// a stored value, when the bytes are not a canonical encoding this
	// version can read (including an unknown encoding version).
	ErrCorrupt = errors.New("state: corrupt encoding")

	// ErrFormatVersion is returned by Open when the database was written with
	// another on-disk format version, or holds keys but no format version
	// key (it is not a wastatus state database).
	ErrFormatVersion = errors.New("state: format version mismatch")

	// ErrInvalidPartition is returned for a negative partition number.
	ErrInvalidPartition = errors.New("state: invalid partition")

	// ErrClosed is returned by Store methods called after Close, and by Batch
	// methods called after Batch.Close.
	ErrClosed = errors.New("state: closed")

	// ErrFailed is returned by every Store and Batch method once the store
	// has failed (see Store.Err): Pebble could not write (a full disk, an
	// I/O error) or found corruption. The error says which, and wraps the OS
	// error (syscall.ENOSPC for a full disk) where there is one.
	ErrFailed = errors.New("state: store failed")

	// ErrDiskFull is returned by Open, and wrapped in the store's failure
	// (ErrFailed), when the store's file system has less free space than
	// Options.MinFreeBytes.
	ErrDiskFull = errors.New("state: disk nearly full")

	// ErrNotEmpty is returned by Store.NewLoadBatch for a partition that
	// holds keys: a load batch assumes it is filling an empty one.
	ErrNotEmpty = errors.New("state: partition not empty")
)
