package bench

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows one phase's progress: a bar on a terminal, else a log
// line every few seconds (a bar in a file or a CI log is noise).
type progress struct {
	what   string
	unit   string
	total  int64
	bar    *progressbar.ProgressBar
	log    *slog.Logger
	began  time.Time
	logged time.Time
}

func (b *Bench) newProgress(what, unit string, total int64) *progress {
	p := &progress{what: what, unit: unit, total: total, log: b.cfg.Logger, began: time.Now()}
	p.logged = p.began
	switch {
	case b.cfg.Progress == nil:
	case b.cfg.Terminal:
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(b.cfg.Progress),
			progressbar.OptionSetDescription(fmt.Sprintf("%-22s", what)),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.cfg.Progress) }),
		)
	default:
		p.log = slog.New(slog.NewTextHandler(b.cfg.Progress, nil))
	}
	return p
}

// set reports that done of total are done.
func (p *progress) set(done int64) {
	if p.bar != nil {
		_ = p.bar.Set64(min(done, p.total))
		return
	}
	if now := time.Now(); now.Sub(p.logged) >= 2*time.Second {
		p.logged = now
		el := now.Sub(p.began).Seconds()
		p.log.Info("bench progress", "phase", p.what, "done", done, "total", p.total, "unit", p.unit,
			"per_sec", int64(float64(done)/max(el, 1e-9)))
	}
}

// finish ends the phase.
func (p *progress) finish(done int64) {
	if p.bar != nil {
		_ = p.bar.Set64(min(done, p.total))
		_ = p.bar.Finish()
		return
	}
	p.log.Info("bench phase done", "phase", p.what, "done", done, "unit", p.unit,
		"seconds", time.Since(p.began).Round(time.Millisecond).Seconds())
}
