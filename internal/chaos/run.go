package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/wastatus/wastatus/schemas"
)

// bounce is the broker bounce's outcome.
type bounce struct {
	how  string        // "SIGKILL" or "SIGTERM"
	at   time.Duration // into the posting phase
	down time.Duration // from the signal to the restarted broker answering
	err  error
}

// chaos posts, kills and bounces for the configured duration, drains, stops
// the fleet and verifies the topics.
func (h *harness) chaos(ctx context.Context) error {
	posting, stopPosting := context.WithTimeout(ctx, h.cfg.Duration)
	defer stopPosting()
	delivering, stopDelivering := context.WithCancel(ctx)
	defer stopDelivering()
	g := newGenerator(h.cfg, h.urls, h.secret)
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		g.run(posting, delivering)
	}()
	h.log.Info("posting", "duration", h.cfg.Duration, "rate", h.cfg.Rate, "regions", len(h.urls))

	start := time.Now()
	bounced := make(chan bounce, 1)
	bounceAt := h.cfg.Duration * 35 / 100
	bouncing := false
	nextKill := start.Add(h.killWait())
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var bounceResult *bounce
	// The healer runs from the bounce to the end of the drain.
	healing, stopHealing := context.WithCancel(ctx)
	defer stopHealing()
	healDone := make(chan healed, 1)
	for posting.Err() == nil {
		select {
		case <-posting.Done():
			continue
		case b := <-bounced:
			if b.err != nil {
				return fmt.Errorf("chaos: broker bounce: %w", b.err)
			}
			bounceResult = &b
			continue
		case <-tick.C:
		}
		if err := h.reap(); err != nil {
			return err
		}
		if h.broker != nil && h.cfg.Bounce != "none" && !bouncing && time.Since(start) >= bounceAt {
			bouncing = true
			how := "SIGKILL"
			if h.cfg.Bounce == "stop" || h.cfg.Bounce == "random" && h.r.IntN(2) == 0 {
				how = "SIGTERM"
			}
			at := time.Since(start)
			h.log.Info("bouncing the broker", "how", how, "at", at.Round(time.Millisecond))
			go func() { bounced <- h.bounce(ctx, how, at) }()
			go h.heal(healing, healDone)
		}
		if time.Now().After(nextKill) {
			if err := h.killOne(); err != nil {
				return err
			}
			nextKill = time.Now().Add(h.killWait())
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h.sum.Posting = time.Since(start)

	// Posting is over: what is unacknowledged is retried until the drain
	// deadline, then the processors must catch up by the same deadline.
	drainBegan := time.Now()
	deadline := drainBegan.Add(h.cfg.DrainTimeout)
	stopAt := time.AfterFunc(h.cfg.DrainTimeout, stopDelivering)
	defer stopAt.Stop()
	for done := false; !done; {
		select {
		case <-genDone:
			done = true
		case <-tick.C:
			if err := h.reap(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if bouncing {
		if bounceResult == nil {
			b := <-bounced // Restart is bounded by scripts/kafka's start timeout
			if b.err != nil {
				return fmt.Errorf("chaos: broker bounce: %w", b.err)
			}
			bounceResult = &b
		}
		b := bounceResult
		h.sum.Bounce = fmt.Sprintf("%s at %s, down %s", b.how, b.at.Round(time.Second), b.down.Round(100*time.Millisecond))
	}
	acked, st := g.result()
	h.sum.Gen = st
	if st.Unacked > 0 {
		h.v.add(checkNeverAcked, "%d of %d POSTs still unacknowledged %s after posting ended", st.Unacked, st.Posts, h.cfg.DrainTimeout)
	}
	h.log.Info("posting done; waiting for the processors to drain", "retrying_took", time.Since(drainBegan).Round(time.Millisecond))
	if err := h.drain(ctx, deadline); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Verified all the same: the events topic still says whether
		// anything acknowledged was lost.
		h.v.add(checkDrained, "%v", err)
	}
	h.sum.Drain = time.Since(drainBegan)
	if bouncing {
		stopHealing()
		h.sum.Hanging = (<-healDone).String()
	}

	h.stopAll()
	for _, p := range h.processors {
		for _, l := range p.logs() {
			h.sum.Prepared.add(l)
		}
	}
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		return err
	}
	verifyBegan := time.Now()
	fig, err := verify(ctx, h.brokers, h.adm, h.names, codec, h.cfg.Policy, acked, st.Unacked, &h.v)
	if err != nil {
		return err
	}
	h.sum.Topics = fig
	h.log.Info("verified", "took", time.Since(verifyBegan).Round(time.Millisecond))
	return nil
}

// killWait draws the time to the next SIGKILL: half to one and a half of
// KillEvery.
func (h *harness) killWait() time.Duration {
	return between(h.r, h.cfg.KillEvery/2, h.cfg.KillEvery*3/2)
}

// killOne SIGKILLs a random processor and starts it again, on an empty data
// dir WipeRate of the time.
func (h *harness) killOne() error {
	p := h.processors[h.r.IntN(len(h.processors))]
	wipe := h.r.Float64() < h.cfg.WipeRate
	p.kill()
	h.sum.Kills++
	if wipe {
		if err := os.RemoveAll(p.dir); err != nil {
			return fmt.Errorf("chaos: wipe %s: %w", p.name, err)
		}
		h.sum.Wipes++
	}
	h.log.Info("SIGKILL", "processor", p.name, "wiped", wipe)
	return p.start()
}

// reap starts again, a second later, every process that ended without
// being killed. Ending during the broker's outage (or the half minute after
// it) is counted: a processor cannot start without a broker, and a
// supervisor restarts it as this does. Ending at any other time is a
// violation.
func (h *harness) reap() error {
	for _, p := range append(h.processors[:len(h.processors):len(h.processors)], h.edges...) {
		ended, err := p.exited()
		if !ended || p.killed {
			continue
		}
		if p.restartAt.IsZero() {
			p.restartAt = time.Now().Add(time.Second)
			if h.inOutage(time.Now()) {
				h.sum.OutageExits++
				h.log.Info("process ended during the broker outage; restarting it", "process", p.name, "err", err)
			} else {
				h.v.add(checkExited, "%s (start %d): %v; last lines:\n%s", p.name, p.starts, err, tail(p.log, 8))
				h.log.Warn("process ended on its own; restarting it", "process", p.name, "err", err)
			}
		}
		if time.Now().Before(p.restartAt) {
			continue
		}
		p.restartAt = time.Time{}
		if err := p.start(); err != nil {
			return err
		}
	}
	return nil
}

// inOutage reports whether t falls in the broker bounce or the 30 s after
// it.
func (h *harness) inOutage(t time.Time) bool {
	h.outageMu.Lock()
	defer h.outageMu.Unlock()
	return !h.outageFrom.IsZero() && !t.Before(h.outageFrom) && (h.outageTo.IsZero() || t.Before(h.outageTo.Add(30*time.Second)))
}

// bounce stops the broker (SIGKILL or SIGTERM) and starts it again on the
// same address with its data.
func (h *harness) bounce(ctx context.Context, how string, at time.Duration) bounce {
	b := bounce{how: how, at: at}
	began := time.Now()
	h.outageMu.Lock()
	h.outageFrom = began
	h.outageMu.Unlock()
	defer func() {
		h.outageMu.Lock()
		h.outageTo = time.Now()
		h.outageMu.Unlock()
	}()
	stop := h.broker.Stop
	if how == "SIGKILL" {
		stop = h.broker.Kill
	}
	if err := stop(ctx); err != nil {
		b.err = err
		return b
	}
	if err := waitClosed(ctx, h.broker.Addr(), 30*time.Second); err != nil {
		b.err = err
		return b
	}
	b.err = h.broker.Restart(ctx)
	b.down = time.Since(began)
	return b
}

// drain waits until the group has committed the end of every partition of
// the events topic and no transaction is open on the current topic, and
// stays so for a second (an instance restoring or catching up has nothing
// left to emit then), restarting processes that end meanwhile.
func (h *harness) drain(ctx context.Context, deadline time.Time) error {
	var (
		lastErr   error
		stableFor time.Time
		lastEnds  map[int32]int64
	)
	for {
		if err := h.reap(); err != nil {
			return err
		}
		lag, open, ends, err := lagAndOpen(ctx, h.adm, h.names)
		switch {
		case err != nil:
			lastErr, stableFor = err, time.Time{}
		case lag > 0:
			lastErr, stableFor = fmt.Errorf("group lag %d", lag), time.Time{}
		case len(open) > 0:
			lastErr, stableFor = fmt.Errorf("transactions open on the current topic's partitions %v", open), time.Time{}
		case !sameEnds(ends, lastEnds) || stableFor.IsZero():
			lastErr, stableFor = errors.New("the current topic is still growing"), time.Now()
		case time.Since(stableFor) >= time.Second:
			return nil
		}
		lastEnds = ends
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: processors did not drain within %s of the end of posting: %w", h.cfg.DrainTimeout, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func sameEnds(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for p, o := range a {
		if b[p] != o {
			return false
		}
	}
	return true
}

// stopAll stops every process with SIGTERM; an unclean stop is counted.
func (h *harness) stopAll() {
	for _, p := range append(h.edges[:len(h.edges):len(h.edges)], h.processors...) {
		if err := p.stop(30 * time.Second); err != nil {
			h.sum.UncleanStops = append(h.sum.UncleanStops, err.Error())
		}
	}
}

// close kills what still runs, stops or deletes the broker, and removes the
// work dir unless it is kept.
func (h *harness) close() error {
	for _, p := range append(h.edges[:len(h.edges):len(h.edges)], h.processors...) {
		p.kill()
	}
	if h.admCl != nil {
		h.admCl.Close()
	}
	var errs []error
	if h.broker != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if h.cfg.Keep {
			errs = append(errs, h.broker.Stop(ctx))
		} else {
			errs = append(errs, h.broker.Close())
		}
	}
	if h.tempDir && !h.cfg.Keep {
		errs = append(errs, os.RemoveAll(h.dir))
	}
	return errors.Join(errs...)
}

// waitClosed waits until nothing accepts connections on addr. A SIGKILLed
// JVM's main thread can be reaped while its other threads still hold the
// listening socket; restarting then would find the port taken and move the
// broker to another one.
func waitClosed(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: the stopped broker's port %s still accepts connections after %s", addr, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
