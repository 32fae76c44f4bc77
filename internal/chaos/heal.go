package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// healAfter is how long a transaction goes without a record before the
// healer may call it hanging: twice the processors' transaction timeout
// (30 s, the default), plus a margin. The processors are the only
// transactional writers of the run's topics and of its group's offsets.
const healAfter = 70 * time.Second

// healEvery is how often the healer looks.
const healEvery = 5 * time.Second

// heal does what an operator does when the broker bounce has left hanging
// transactions (docs/OPERATIONS.md, "Stalled on a hanging transaction"):
// it runs `wastatus txn abort --yes --unattributed` every healEvery until
// ctx is done, and reports on done the transactions it aborted, as the
// command's JSON log lines name them, and the runs that failed.
func (h *harness) heal(ctx context.Context, done chan<- healed) {
	var res healed
	defer func() { done <- res }()
	t := time.NewTicker(healEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		out, err := exec.CommandContext(ctx, h.bin, "txn", "abort", "--yes", "--unattributed",
			"--brokers", strings.Join(h.brokers, ","),
			"--current-topic", h.names.current, "--dlq-topic", h.names.dlq,
			"--group", h.names.group, "--older-than", healAfter.String(), "--log-format", "json").CombinedOutput()
		if ctx.Err() != nil {
			return
		}
		res.runs++
		n := len(res.aborted)
		for _, line := range strings.Split(string(out), "\n") {
			var l struct{ Msg, Transaction string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "transaction aborted" {
				res.aborted = append(res.aborted, l.Transaction)
			}
		}
		if n := len(res.aborted) - n; n > 0 {
			h.log.Info("aborted hanging transactions", "transactions", n, "since_bounce", time.Since(h.bounceBegan()).Round(time.Second))
		}
		if err != nil {
			res.failures++
			res.lastErr = fmt.Errorf("wastatus txn abort: %w: %s", err, lastLines(string(out), 5))
			h.log.Warn("txn abort failed", "err", res.lastErr)
		}
	}
}

// healed is what the healer did.
type healed struct {
	aborted  []string // as txn abort names them
	runs     int      // runs of txn abort that ended
	failures int      // of them, those that failed
	lastErr  error
}

// String is the summary's line.
func (r healed) String() string {
	s := fmt.Sprintf("none found by %d runs of wastatus txn abort", r.runs)
	if len(r.aborted) > 0 {
		s = fmt.Sprintf("%d aborted by %d runs of wastatus txn abort: %s", len(r.aborted), r.runs, strings.Join(r.aborted, "; "))
	}
	if r.failures > 0 {
		s += fmt.Sprintf("; %d runs failed, the last: %v", r.failures, r.lastErr)
	}
	return s
}

// bounceBegan is when the broker bounce began; zero before it.
func (h *harness) bounceBegan() time.Time {
	h.outageMu.Lock()
	defer h.outageMu.Unlock()
	return h.outageFrom
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
