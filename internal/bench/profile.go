package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/pprof/profile"
)

// profileWindow is the length of each CPU profile taken from a child; the
// windows are merged into one profile at the end, so the profile covers
// the child's whole run without knowing its length in advance.
const profileWindow = 5 * time.Second

func (b *Bench) profiling() bool { return b.cfg.CPUProfile != "" || b.cfg.MemProfile != "" }

// profiler takes a child's profiles over its /debug/pprof endpoints (the
// child runs with --pprof).
type profiler struct {
	b      *Bench
	base   string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	cpus []*profile.Profile
	err  error
}

func (b *Bench) startProfiler(ctx context.Context, c *child, addr string) *profiler {
	p := &profiler{b: b, base: "http://" + addr + "/debug/pprof/"}
	if b.cfg.CPUProfile == "" {
		return p
	}
	pctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	p.wg.Go(func() {
		if err := waitHTTP(pctx, c, p.base); err != nil {
			return
		}
		for pctx.Err() == nil {
			// A window cut short by the end of the run is lost: at most
			// profileWindow of the end of the run.
			prof, err := p.fetch(pctx, fmt.Sprintf("profile?seconds=%d", int(profileWindow.Seconds())))
			if err != nil {
				if pctx.Err() == nil {
					p.setErr(err)
				}
				return
			}
			p.mu.Lock()
			p.cpus = append(p.cpus, prof)
			p.mu.Unlock()
		}
	})
	return p
}

func (p *profiler) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

func (p *profiler) fetch(ctx context.Context, what string) (*profile.Profile, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+what, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: profile: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: profile: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("bench: profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: profile %s: %s: %s", what, resp.Status, bytes.TrimSpace(body))
	}
	prof, err := profile.Parse(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("bench: profile %s: %w", what, err)
	}
	return prof, nil
}

// finish takes the heap profile (while the child still runs) and writes
// the merged CPU profile.
func (p *profiler) finish(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	if p.err != nil {
		return p.err
	}
	if path := p.b.cfg.MemProfile; path != "" {
		heap, err := p.fetch(ctx, "heap")
		if err != nil {
			return err
		}
		if err := writeProfile(path, heap); err != nil {
			return err
		}
	}
	if path := p.b.cfg.CPUProfile; path != "" {
		if len(p.cpus) == 0 {
			return fmt.Errorf("bench: cpu profile: the run ended before the first %s window; use more events", profileWindow)
		}
		merged, err := profile.Merge(p.cpus)
		if err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		return writeProfile(path, merged)
	}
	return nil
}

func writeProfile(path string, prof *profile.Profile) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: profile: %w", err)
	}
	if err := prof.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: profile: %w", err)
	}
	return nil
}
