package edge

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{Region: "r", AppSecret: []byte("s")}.withDefaults()
	if got.EventsTopic != "whatsapp.status.events" || got.DLQTopic != "whatsapp.status.dlq" {
		t.Errorf("topics = %q, %q, want the contract's defaults", got.EventsTopic, got.DLQTopic)
	}
	if got.MaxBodyBytes != 4<<20 {
		t.Errorf("MaxBodyBytes = %d, want 4 MiB", got.MaxBodyBytes)
	}
	if got.ProduceTimeout != 5*time.Second {
		t.Errorf("ProduceTimeout = %s, want 5s", got.ProduceTimeout)
	}
	if got.MaxRecordBytes != DefaultMaxRecordBytes || got.MaxRecordBytes+recordOverhead > producerBatchMaxBytes {
		t.Errorf("MaxRecordBytes = %d, want %d, within the producer batch of %d", got.MaxRecordBytes, DefaultMaxRecordBytes, producerBatchMaxBytes)
	}
	if got.Logger == nil || got.Now == nil {
		t.Error("Logger or Now left nil")
	}
	if got.Logger.Enabled(t.Context(), 12) {
		t.Error("the default logger is not a discard logger")
	}

	if got.BodyReadTimeout != 10*time.Second || got.ClientRate != 10_000 || got.ClientBurst != 20_000 || got.MaxClients != 16_384 {
		t.Errorf("BodyReadTimeout %s, ClientRate %g, ClientBurst %d, MaxClients %d; want 10s, 10000, 20000, 16384",
			got.BodyReadTimeout, got.ClientRate, got.ClientBurst, got.MaxClients)
	}
	if b := (Config{ClientRate: 0.25}).withDefaults().ClientBurst; b != 1 {
		t.Errorf("ClientBurst for 0.25/s = %d, want at least 1", b)
	}
	if b := (Config{ClientRate: 50}).withDefaults().ClientBurst; b != 100 {
		t.Errorf("ClientBurst for 50/s = %d, want 2 s of it", b)
	}

	set := Config{EventsTopic: "e", DLQTopic: "d", MaxBodyBytes: 1, MaxRecordBytes: 2, ProduceTimeout: 3}.withDefaults()
	if set.EventsTopic != "e" || set.DLQTopic != "d" || set.MaxBodyBytes != 1 || set.MaxRecordBytes != 2 || set.ProduceTimeout != 3 {
		t.Errorf("withDefaults overwrote set fields: %+v", set)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func(c *Config) {}
	tests := []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"minimal", ok, nil},
		{"insecure without secret", func(c *Config) { c.AppSecret, c.InsecureSkipSignature = nil, true }, nil},
		{"no region", func(c *Config) { c.Region = "" }, ErrConfig},
		{"no secret", func(c *Config) { c.AppSecret = nil }, ErrConfig},
		{"secret and insecure", func(c *Config) { c.InsecureSkipSignature = true }, ErrConfig},
		{"same topics", func(c *Config) { c.EventsTopic, c.DLQTopic = "t", "t" }, ErrConfig},
		{"dlq named like the default events topic", func(c *Config) { c.DLQTopic = DefaultEventsTopic }, ErrConfig},
		{"negative body", func(c *Config) { c.MaxBodyBytes = -1 }, ErrConfig},
		{"tiny record", func(c *Config) { c.MaxRecordBytes = 100 }, ErrConfig},
		{"negative record", func(c *Config) { c.MaxRecordBytes = -1 }, ErrConfig},
		{"negative timeout", func(c *Config) { c.ProduceTimeout = -time.Second }, ErrConfig},
		{"negative body read timeout", func(c *Config) { c.BodyReadTimeout = -time.Second }, ErrConfig},
		{"rate limit off", func(c *Config) { c.ClientRate = -1 }, nil},
		{"negative burst", func(c *Config) { c.ClientRate, c.ClientBurst = 5, -1 }, ErrConfig},
		{"negative max clients", func(c *Config) { c.MaxClients = -1 }, ErrConfig},
		{"trusted proxy", func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }, nil},
		{"invalid trusted proxy", func(c *Config) { c.TrustedProxies = []netip.Prefix{{}} }, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Region: "eu", AppSecret: []byte("s")}
			tt.mod(&c)
			before := c
			if err := c.Validate(); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			if c.EventsTopic != before.EventsTopic || c.Logger != nil {
				t.Error("Validate modified its receiver")
			}
		})
	}
}
