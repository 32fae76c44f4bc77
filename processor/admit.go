package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/wastatus/wastatus/schemas"
	"github.com/wastatus/wastatus/state"
)

// Admit reports whether the processor would fold an events-topic record
// with key and value, by the rules its partition workers apply, without a
// store: the value's size (Config.MaxRecordBytes), its decoding as a
// StatusEvent, the key being the event's wamid, and the event's own checks
// (a known status, a wamid, a positive timestamp). It returns the decoded
// event, or the dead-letter reason the processor would give (ReasonTooLarge,
// ReasonUndecodable, ReasonKeyMismatch, ReasonUnknownStatus,
// ReasonInvalidEvent) and why. A dead-letter replay uses it to find the
// records that would be rejected again.
func Admit(cfg Config, codec *schemas.Codec, key, value []byte) (schemas.StatusEvent, string, error) {
	ev, reason, err := admitRecord(cfg.withDefaults().MaxRecordBytes, codec, key, value)
	if err != nil {
		return ev, reason, err
	}
	var m state.Message
	if _, err := m.Apply(&ev, state.FailedWins); err != nil {
		if errors.Is(err, state.ErrUnknownStatus) {
			return ev, ReasonUnknownStatus, err
		}
		return ev, ReasonInvalidEvent, err
	}
	return ev, "", nil
}

// admitRecord applies the checks of a record that need no state: its size,
// its decoding and its key. The event's own checks are Batch.Apply's.
func admitRecord(maxBytes int, codec *schemas.Codec, key, value []byte) (schemas.StatusEvent, string, error) {
	if len(value) > maxBytes {
		return schemas.StatusEvent{}, ReasonTooLarge, fmt.Errorf("value of %d bytes exceeds the %d-byte limit", len(value), maxBytes)
	}
	// The fold never reads the status object's JSON (Raw): a dead letter
	// carries the record's own value.
	ev, err := codec.DecodeStatusEventNoRaw(context.Background(), value)
	if err != nil {
		return ev, ReasonUndecodable, err
	}
	if string(key) != ev.WAMID {
		return ev, ReasonKeyMismatch, fmt.Errorf("record key %q is not the event's wamid %q", key, ev.WAMID)
	}
	return ev, "", nil
}
