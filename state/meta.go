package state

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// metaPrefix starts the keys of store-wide metadata. Like the format version
// key, it sorts above every partition's keys (0xff is above any non-negative
// int32's first byte), so DropPartition never touches it.
const metaPrefix = "\xffwastatus.meta."

// Meta returns the store-wide metadata value called name (the processor keeps
// its instance id and the ids of the topics it folded there), and false when
// it was never set.
func (s *Store) Meta(name string) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	if err := s.Err(); err != nil {
		return nil, false, err
	}
	var (
		val   []byte
		found bool
	)
	err := s.guard(func() error {
		v, closer, err := s.db.Get([]byte(metaPrefix + name))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer closer.Close()
		val, found = append([]byte(nil), v...), true
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("state: get meta %s: %w", name, err)
	}
	return val, found, nil
}

// SetMeta sets the store-wide metadata value called name, durably.
func (s *Store) SetMeta(name string, value []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	set := func() error { return s.db.Set([]byte(metaPrefix+name), value, pebble.Sync) }
	if err := s.write(set); err != nil {
		return fmt.Errorf("state: set meta %s: %w", name, err)
	}
	return nil
}
