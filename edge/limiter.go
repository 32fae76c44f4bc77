package edge

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// HeaderForwardedFor is the header a trusted proxy names the client in.
const HeaderForwardedFor = "X-Forwarded-For"

// clientLimits is the table of per-client token buckets behind
// Config.ClientRate. Its memory is bounded by Config.MaxClients: a client
// idle long enough for its bucket to be full again is forgotten (a new
// entry would be the same), and when the table is full of active clients
// the least recently seen one is forgotten. There is no sweeping goroutine:
// each request forgets up to two idle clients, which keeps the table
// drained at least as fast as new clients arrive.
type clientLimits struct {
	rate    rate.Limit
	burst   int
	max     int
	refill  time.Duration // idle time after which a client's bucket is full
	trusted []netip.Prefix

	mu      sync.Mutex
	clients map[netip.Addr]*list.Element // values are *clientLimit
	lru     list.List                    // front: most recently seen
}

// clientLimit is one client's bucket.
type clientLimit struct {
	addr netip.Addr
	lim  *rate.Limiter
	last time.Time // when the client was last seen
}

// newClientLimits returns the table for cfg (with defaults applied), or
// nil when the limit is off.
func newClientLimits(cfg Config) *clientLimits {
	if cfg.ClientRate < 0 {
		return nil
	}
	refill := time.Duration(float64(cfg.ClientBurst) / cfg.ClientRate * float64(time.Second))
	return &clientLimits{
		rate:    rate.Limit(cfg.ClientRate),
		burst:   cfg.ClientBurst,
		max:     cfg.MaxClients,
		refill:  max(refill, time.Millisecond),
		trusted: cfg.TrustedProxies,
		clients: make(map[netip.Addr]*list.Element),
	}
}

// allow takes a token from addr's bucket at now. When there is none it
// returns false and how long until there will be one.
func (c *clientLimits) allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetIdle(now, 2)
	var cl *clientLimit
	if el, ok := c.clients[addr]; ok {
		cl = el.Value.(*clientLimit)
		c.lru.MoveToFront(el)
	} else {
		if len(c.clients) >= c.max {
			c.forget(c.lru.Back())
		}
		cl = &clientLimit{addr: addr, lim: rate.NewLimiter(c.rate, c.burst)}
		c.clients[addr] = c.lru.PushFront(cl)
	}
	cl.last = now
	if cl.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - cl.lim.TokensAt(now)
	return false, time.Duration(missing / float64(c.rate) * float64(time.Second))
}

// forgetIdle forgets up to n of the least recently seen clients whose
// buckets are full again at now.
func (c *clientLimits) forgetIdle(now time.Time, n int) {
	for ; n > 0; n-- {
		el := c.lru.Back()
		if el == nil || now.Sub(el.Value.(*clientLimit).last) < c.refill {
			return
		}
		c.forget(el)
	}
}

func (c *clientLimits) forget(el *list.Element) {
	delete(c.clients, c.lru.Remove(el).(*clientLimit).addr)
}

// size returns how many clients the table remembers.
func (c *clientLimits) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clients)
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least 1.
func retryAfter(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// clientKey returns the key req is limited by: the address of its sender,
// or, when the sender is a trusted proxy, the rightmost address of
// X-Forwarded-For that is not a trusted proxy. Only trusted proxies append
// to the right of that header, so what a client wrote to its left is never
// read. A hop that does not parse stops the walk at the last trusted
// address. Addresses that cannot be parsed at all (a Unix socket) share
// the zero key.
func (c *clientLimits) clientKey(req *http.Request) netip.Addr {
	addr := parseHop(req.RemoteAddr)
	if !c.isTrusted(addr) {
		return limitKey(addr)
	}
	values := req.Header.Values(HeaderForwardedFor)
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			hop := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			a := parseHop(hop)
			if !a.IsValid() {
				return limitKey(addr)
			}
			if !c.isTrusted(a) {
				return limitKey(a)
			}
			addr = a
		}
	}
	return limitKey(addr)
}

func (c *clientLimits) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses an address as RemoteAddr and X-Forwarded-For carry it:
// "host:port", "[v6]:port", or a bare address, with spaces around. It
// returns the zero Addr when s is none of these.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// limitKey groups IPv6 addresses by their /64, the block one host or
// subscriber is usually given, so that a client cannot multiply its limit
// by walking its own block. IPv4 addresses are their own key.
func limitKey(a netip.Addr) netip.Addr {
	if !a.Is6() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}
