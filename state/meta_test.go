package state

import (
	"bytes"
	"errors"
	"testing"
)

func TestMetaSurvivesReopenAndPartitionDrops(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Meta("instance"); err != nil || ok {
		t.Fatalf("unset meta: ok=%v err=%v", ok, err)
	}
	if err := s.SetMeta("instance", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 4; p++ {
		if err := s.DropPartition(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Meta("instance"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Meta after Close: %v", err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok, err := s.Meta("instance")
	if err != nil || !ok || !bytes.Equal(got, []byte("abc")) {
		t.Fatalf("Meta = %q %v %v, want abc", got, ok, err)
	}
}
