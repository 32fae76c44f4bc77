package bench

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrSystem is returned, wrapped, when a system under test misbehaves: it
// exits, answers a POST with an error, or loses an event.
var ErrSystem = errors.New("bench: system under test failed")

var kerrTopicExists = kerr.TopicAlreadyExists
