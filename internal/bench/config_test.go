package bench

import (
	"errors"
	"testing"
)

// TestConfigRounds: one round unless told otherwise, and never fewer than
// none.
func TestConfigRounds(t *testing.T) {
	c := Config{Mode: ModeProcessor}
	c.fillDefaults()
	if c.Rounds != 1 {
		t.Errorf("default rounds %d, want 1", c.Rounds)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	c.Rounds = -1
	if err := c.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("rounds -1: %v, want ErrConfig", err)
	}
	c.Rounds = 3
	for mode, ok := range map[string]bool{ModeProcessor: true, ModeAll: true, ModeEdge: false, ModePipeline: false} {
		c.Mode = mode
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("3 rounds in mode %s: %v", mode, err)
		}
	}
}
