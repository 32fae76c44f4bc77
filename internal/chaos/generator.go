package chaos

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/gen"
)

// Region is one edge's region and how long Meta's deliveries through it
// take: each status is posted a uniform delay between Min and Max after its
// payload time comes.
type Region struct {
	Name     string
	Min, Max time.Duration
}

// Regions are the regions the edges serve, in order: delays an order of
// magnitude apart, so a message's statuses routinely cross each other.
func Regions() []Region {
	return []Region{
		{Name: "us-east-1", Min: 10 * time.Millisecond, Max: 200 * time.Millisecond},
		{Name: "eu-west-1", Min: 100 * time.Millisecond, Max: 2 * time.Second},
		{Name: "ap-south-1", Min: 500 * time.Millisecond, Max: 5 * time.Second},
	}
}

// The workload's payload clock runs payloadSpeed times faster than the wall
// clock, so a read ten minutes after its delivered comes a second later, and
// a retry 10 to 40 s late carries timestamps 2 to 7 hours behind the newest.
const (
	payloadSpeed = 600
	lateMin      = 10 * time.Second
	lateMax      = 40 * time.Second
	lateFirst    = 0.02 // share of statuses first delivered hours late
	lateRetry    = 0.25 // share of duplicates that come hours late
	groupRate    = 0.1  // share of group messages
	maxPerPost   = 25   // statuses in one POST, at most
	workers      = 6    // concurrent POSTs per region
)

// post is one webhook POST, sent again with the same body until an edge
// acknowledges it, as Meta does.
type post struct {
	region   int
	statuses []gen.Status
	body     []byte
	sig      string
}

// generator schedules every status of a stream of messages for delivery
// through a region, with duplicates and late retries, and posts them to the
// region's edge. Its scheduler goroutine alone uses r and pending; the
// posting workers share the counters under mu.
type generator struct {
	cfg     Config
	secret  []byte
	urls    []string // by region
	regions []Region
	hc      *http.Client

	r       *rand.Rand
	start   time.Time
	base    int64 // payload time at start
	pending dueHeap
	created int
	queues  []*queue

	mu      sync.Mutex
	acked   []gen.Status
	st      genStats
	lastAck time.Time
}

// genStats are the generator's counters.
type genStats struct {
	Messages       int           // messages created
	Statuses       int           // distinct status objects scheduled
	Duplicates     int           // of them scheduled again
	Late           int           // deliveries scheduled 10-40 s (hours of payload time) late
	NeverPosted    int           // deliveries still scheduled when posting ended
	Posts          int           // POSTs built
	Attempts       int           // POST requests sent
	Retried        int           // requests answered non-200 or failed
	AckedPosts     int           // POSTs acknowledged
	AckedEvents    int           // status objects acknowledged
	Unacked        int           // POSTs never acknowledged
	LongestNoAck   time.Duration // longest time without any acknowledged POST
	PostingStopped time.Time
}

func newGenerator(cfg Config, urls []string, secret []byte) *generator {
	g := &generator{
		cfg:     cfg,
		secret:  secret,
		urls:    urls,
		regions: Regions()[:len(urls)],
		hc: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: workers},
		},
		r:    rand.New(rand.NewPCG(cfg.Seed, 2)),
		base: 1_750_000_000 + int64(cfg.Seed%1_000_000),
	}
	for range urls {
		g.queues = append(g.queues, newQueue())
	}
	return g
}

// run schedules and posts until posting is done, then keeps retrying what
// is unacknowledged until ctx is done. It returns once every POST built was
// acknowledged or given up.
func (g *generator) run(posting, ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range g.queues {
		for range workers {
			wg.Go(func() {
				for p := q.take(); p != nil; p = q.take() {
					if ctx.Err() != nil {
						g.mu.Lock()
						g.st.Unacked++
						g.mu.Unlock()
						continue
					}
					g.deliver(ctx, p)
				}
			})
		}
	}
	g.schedule(posting)
	for _, q := range g.queues {
		q.close()
	}
	wg.Wait()
}

// schedule creates cfg.Rate messages a second and hands every delivery that
// is due to its region's queue, until posting is done.
func (g *generator) schedule(posting context.Context) {
	g.start = time.Now()
	g.lastAck = g.start
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-posting.Done():
			g.mu.Lock()
			g.st.NeverPosted = len(g.pending)
			g.st.PostingStopped = time.Now()
			g.mu.Unlock()
			return
		case <-tick.C:
		}
		now := time.Since(g.start)
		for want := int(now.Seconds() * float64(g.cfg.Rate)); g.created < want; g.created++ {
			g.message(g.created, now)
		}
		due := make([][]gen.Status, len(g.regions))
		for len(g.pending) > 0 && g.pending[0].at <= now {
			d := heap.Pop(&g.pending).(delivery)
			due[d.region] = append(due[d.region], d.status)
		}
		for region, sts := range due {
			for len(sts) > 0 {
				n := min(1+g.r.IntN(maxPerPost), len(sts))
				g.enqueue(region, sts[:n])
				sts = sts[n:]
			}
		}
	}
}

// message schedules the statuses of message i, created now: each through
// a random region, after the region's delay from its payload time; a few
// first delivered hours late; DupRate of them delivered again, shortly or
// (a quarter of those) hours late.
func (g *generator) message(i int, now time.Duration) {
	sentAt := g.base + int64(now.Seconds()*payloadSpeed)
	sts := gen.Message(g.r, i, sentAt, groupRate)
	g.mu.Lock()
	g.st.Messages++
	g.st.Statuses += len(sts)
	g.mu.Unlock()
	for _, s := range sts {
		region := g.r.IntN(len(g.regions))
		at := time.Duration(float64(s.Timestamp-g.base)/payloadSpeed*float64(time.Second)) + g.delay(region)
		if g.r.Float64() < lateFirst {
			at += g.late()
		}
		g.push(at, region, s)
		if g.r.Float64() < g.cfg.DupRate {
			again := at + between(g.r, 50*time.Millisecond, 3*time.Second)
			if g.r.Float64() < lateRetry {
				again = at + g.late()
			}
			g.push(again, g.r.IntN(len(g.regions)), s)
			g.mu.Lock()
			g.st.Duplicates++
			g.mu.Unlock()
		}
	}
}

func (g *generator) delay(region int) time.Duration {
	rg := g.regions[region]
	return between(g.r, rg.Min, rg.Max)
}

func (g *generator) late() time.Duration {
	g.mu.Lock()
	g.st.Late++
	g.mu.Unlock()
	return between(g.r, lateMin, lateMax)
}

func (g *generator) push(at time.Duration, region int, s gen.Status) {
	heap.Push(&g.pending, delivery{at: at, region: region, status: s})
}

func (g *generator) enqueue(region int, sts []gen.Status) {
	body := gen.Webhook(sts)
	g.queues[region].put(&post{region: region, statuses: sts, body: body, sig: edge.Sign(body, g.secret)})
	g.mu.Lock()
	g.st.Posts++
	g.mu.Unlock()
}

// deliver posts p until its edge answers 200, backing off between tries,
// or until ctx is done (then p counts as never acknowledged).
func (g *generator) deliver(ctx context.Context, p *post) {
	backoff := 100 * time.Millisecond
	for {
		err := g.postOnce(ctx, p)
		g.mu.Lock()
		g.st.Attempts++
		if err == nil {
			now := time.Now()
			g.st.AckedPosts++
			g.st.AckedEvents += len(p.statuses)
			g.acked = append(g.acked, p.statuses...)
			g.st.LongestNoAck = max(g.st.LongestNoAck, now.Sub(g.lastAck))
			g.lastAck = now
		} else {
			g.st.Retried++
		}
		g.mu.Unlock()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			g.mu.Lock()
			g.st.Unacked++
			g.mu.Unlock()
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (g *generator) postOnce(ctx context.Context, p *post) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.urls[p.region], bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", p.sig)
	resp, err := g.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", g.urls[p.region], resp.StatusCode, b)
	}
	return nil
}

// result returns the events acknowledged and the counters.
func (g *generator) result() ([]gen.Status, genStats) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.acked, g.st
}

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// delivery is one status to post through region once at has passed since
// the generator started.
type delivery struct {
	at     time.Duration
	region int
	status gen.Status
}

type dueHeap []delivery

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(delivery)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// queue is an unbounded queue of POSTs for one region's workers: during a
// broker outage deliveries pile up here while the workers retry.
type queue struct {
	mu     sync.Mutex
	items  []*post
	ready  chan struct{} // a token when items may be non-empty
	closed chan struct{} // closed when no more items come
}

func newQueue() *queue {
	return &queue{ready: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (q *queue) put(p *post) {
	q.mu.Lock()
	q.items = append(q.items, p)
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the next POST, waiting for one; nil once the queue is closed
// and empty.
func (q *queue) take() *post {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			p := q.items[0]
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			if more {
				q.signal()
			}
			return p
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-q.closed:
			q.mu.Lock()
			empty := len(q.items) == 0
			q.mu.Unlock()
			if empty {
				return nil
			}
		}
	}
}

func (q *queue) close() { close(q.closed) }
