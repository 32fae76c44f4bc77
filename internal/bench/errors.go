package bench

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrSystem is returned, wrapped, when a system under test misbehaves: it
// exits, answers a POST with an error, or loses an event.
var ErrSystem = errors.New("bench: system under test failed")

func errEventCount(n int) error {
	return fmt.Errorf("bench: generated webhook parsed into %d events, want 1", n)
}

var kerrTopicExists = kerr.TopicAlreadyExists
