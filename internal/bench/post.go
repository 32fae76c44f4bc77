package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/gen"
)

// post is one signed webhook POST to send.
type post struct {
	seq   int64
	a     gen.Arrival
	body  []byte
	sig   string
	sched time.Time // when it was due (pipeline mode), else zero
}

// poster sends signed single-status webhooks over keep-alive HTTP.
type poster struct {
	url    string
	client *http.Client
	errors atomic.Int64
	done   atomic.Int64
	first  atomic.Pointer[string] // the first failure, for the error message
}

func newPoster(url string, conns int) *poster {
	return &poster{url: url, client: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
	}}
}

func (b *Bench) newPost(seq int64, a gen.Arrival) post {
	body := appendWebhook(make([]byte, 0, 512), &a)
	return post{seq: seq, a: a, body: body, sig: edge.Sign(body, b.secret)}
}

// send posts p and returns whether the edge answered 200.
func (ps *poster) send(ctx context.Context, p *post) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ps.url, bytes.NewReader(p.body))
	if err != nil {
		ps.fail(err.Error())
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(edge.SignatureHeader, p.sig)
	req.Header.Set(SeqHeader, strconv.FormatInt(p.seq, 10))
	resp, err := ps.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			ps.fail(err.Error())
		}
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ps.fail(fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body)))
		return false
	}
	ps.done.Add(1)
	return true
}

func (ps *poster) fail(msg string) {
	ps.errors.Add(1)
	ps.first.CompareAndSwap(nil, &msg)
}

// closedLoop sends n posts from the workload with conns in flight at a
// time, as fast as the edge answers, recording each POST's latency and
// the count done every 100 ms.
func (b *Bench) closedLoop(ctx context.Context, ps *poster, n int, conns int, rec *recorder, prog *progress) {
	jobs := make(chan post, 4*conns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(jobs)
		s := b.stream(n)
		var seq int64
		for a, ok := s.Next(); ok; a, ok = s.Next() {
			select {
			case jobs <- b.newPost(seq, a):
			case <-ctx.Done():
				return
			}
			seq++
		}
	}()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for p := range jobs {
				t0 := time.Now()
				if ps.send(ctx, &p) {
					now := time.Now()
					rec.latency(now, now.Sub(t0))
				}
			}
		})
	}
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				d := ps.done.Load()
				rec.count(now, d)
				prog.set(d)
			}
		}
	})
	wg.Wait()
	close(stop)
	sampler.Wait()
	rec.count(time.Now(), ps.done.Load())
	prog.finish(ps.done.Load())
}
