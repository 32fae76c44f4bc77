package edge

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func testLimits(t *testing.T, mod func(*Config)) *clientLimits {
	t.Helper()
	cfg := Config{Region: "r", AppSecret: []byte("s")}
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return newClientLimits(cfg.withDefaults())
}

func TestClientKey(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"remote address", "203.0.113.7:5555", nil, nil, "203.0.113.7"},
		{"header ignored without trusted proxies", "203.0.113.7:5555", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"header ignored from an untrusted sender", "203.0.113.7:5555", []string{"198.51.100.1"}, proxies, "203.0.113.7"},
		{"trusted proxy: its client", "10.1.2.3:80", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"rightmost untrusted hop", "10.1.2.3:80", []string{"192.0.2.66, 198.51.100.1, 10.9.9.9"}, proxies, "198.51.100.1"},
		{"a client's forged left part is never read", "10.1.2.3:80", []string{"1.1.1.1, 10.0.0.1", "198.51.100.1"}, proxies, "198.51.100.1"},
		{"several header lines, right to left", "10.1.2.3:80", []string{"198.51.100.1", "10.0.0.2"}, proxies, "198.51.100.1"},
		{"garbage hop: the last trusted address", "10.1.2.3:80", []string{"unknown, 10.0.0.2"}, proxies, "10.0.0.2"},
		{"only proxies: the leftmost", "10.1.2.3:80", []string{"10.0.0.5, 10.0.0.2"}, proxies, "10.0.0.5"},
		{"proxy without the header", "10.1.2.3:80", nil, proxies, "10.1.2.3"},
		{"hop with a port", "10.1.2.3:80", []string{"198.51.100.1:4711"}, proxies, "198.51.100.1"},
		{"IPv6 grouped by /64", "[2001:db8:1:2:aaaa::1]:443", nil, nil, "2001:db8:1:2::"},
		{"IPv6 hop from a v6 proxy", "[fd00::1]:443", []string{"[2001:db8:1:2::99]:1"}, proxies, "2001:db8:1:2::"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:203.0.113.7]:1", nil, nil, "203.0.113.7"},
		{"unparsable remote: the zero key", "@", []string{"198.51.100.1"}, proxies, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testLimits(t, func(c *Config) { c.TrustedProxies = tt.trusted })
			req := httptest.NewRequest(http.MethodPost, "/webhook", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add(HeaderForwardedFor, v)
			}
			if got := c.clientKey(req).String(); got != tt.want {
				t.Errorf("clientKey = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClientLimitsAllow(t *testing.T) {
	c := testLimits(t, func(c *Config) { c.ClientRate, c.ClientBurst = 2, 3 })
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(1_750_000_000, 0)
	for i := range 3 {
		if ok, _ := c.allow(a, t0); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := c.allow(a, t0)
	if ok || wait != 500*time.Millisecond {
		t.Errorf("fourth request: allowed %t, wait %s; want refused, 500ms (one token at 2/s)", ok, wait)
	}
	if ok, _ := c.allow(b, t0); !ok {
		t.Error("another client was refused: limits are not per client")
	}
	if ok, _ := c.allow(a, t0.Add(500*time.Millisecond)); !ok {
		t.Error("refused after its wait")
	}
	if got := retryAfter(wait); got != 1 {
		t.Errorf("retryAfter(%s) = %d, want 1", wait, got)
	}
	if got := retryAfter(2100 * time.Millisecond); got != 3 {
		t.Errorf("retryAfter(2.1s) = %d, want 3", got)
	}
}

// TestClientLimitsBounded sends from many more addresses than the table
// holds: it never holds more than MaxClients, idle clients are forgotten
// once their bucket is full again, and a busy client is not.
func TestClientLimitsBounded(t *testing.T) {
	const maxClients = 100
	c := testLimits(t, func(c *Config) { c.ClientRate, c.ClientBurst, c.MaxClients = 10, 10, maxClients })
	t0 := time.Unix(1_750_000_000, 0)
	busy := netip.MustParseAddr("198.51.100.1")
	for i := range 10 * maxClients {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if i%5 == 0 {
			c.allow(busy, now)
		}
		c.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
		if n := c.size(); n > maxClients {
			t.Fatalf("after %d clients the table holds %d, over %d", i+1, n, maxClients)
		}
	}
	c.mu.Lock()
	_, kept := c.clients[busy]
	c.mu.Unlock()
	if !kept {
		t.Error("a busy client was forgotten while idle ones were kept")
	}
	// A minute later every entry's bucket is full again, so each is
	// forgettable: each request forgets two, where evicting for room
	// alone would keep the table full.
	later := t0.Add(time.Minute)
	newcomer := netip.MustParseAddr("192.0.2.200")
	for range 10 {
		c.allow(newcomer, later)
	}
	if got, want := c.size(), maxClients-20+1; got != want {
		t.Errorf("after 10 requests from one client a minute later, the table holds %d, want %d", got, want)
	}
}
