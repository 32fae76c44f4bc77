package chaos

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Summary is what a run did and found.
type Summary struct {
	Seed           uint64
	Config         Config
	Dir            string        // work dir: binary, data dirs, logs
	SessionTimeout string        // the broker setting that bounds a SIGKILLed member's stall
	Posting        time.Duration // how long the posting phase lasted
	Drain          time.Duration // from the end of posting to everything acknowledged and folded
	Bounce         string        // how the broker was bounced and for how long; "" if not
	Hanging        string        // what became of hanging transactions after the bounce; "" if no bounce
	Kills, Wipes   int           // processors SIGKILLed; of them restarted on an empty data dir
	OutageExits    int           // processes that ended during the broker outage, restarted
	Prepared       prepared      // restores and catch-ups the processors logged
	Gen            genStats
	Topics         topicFigures
	UncleanStops   []string // processes that did not stop cleanly on SIGTERM at the end
	Violations     []Violation
}

// OK reports whether every promise held.
func (s Summary) OK() bool { return len(s.Violations) == 0 }

// Write prints the summary for people.
func (s Summary) Write(w io.Writer) {
	c := s.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("chaos run, seed %d: %s of posting, %d processors (%s protocol, %s), %d edges, %d partitions",
		s.Seed, s.Posting.Round(time.Second), c.Processors, c.GroupProtocol, c.Policy, c.Edges, c.Partitions)
	broker := "own broker, not bounced"
	if len(c.Brokers) > 0 {
		broker = "existing broker " + strings.Join(c.Brokers, ",") + ", not bounced"
	} else if s.Bounce != "" {
		broker = "own broker, bounced by " + s.Bounce
	}
	p("  broker:      %s; %s", broker, s.SessionTimeout)
	if s.Hanging != "" {
		p("  hanging:     %s", s.Hanging)
	}
	g := s.Gen
	p("  generator:   %d messages, %d statuses, %d sent again (duplicates), %d deliveries 2-7 payload hours late",
		g.Messages, g.Statuses, g.Duplicates, g.Late)
	p("  posts:       %d POSTs, %d requests, %d answered non-200 or failed and retried; %d acknowledged (%d events), %d never",
		g.Posts, g.Attempts, g.Retried, g.AckedPosts, g.AckedEvents, g.Unacked)
	p("               longest time with no POST acknowledged: %s; %d deliveries still scheduled at the end, never posted",
		g.LongestNoAck.Round(100*time.Millisecond), g.NeverPosted)
	r := s.Prepared
	p("  processors:  %d SIGKILLs every ~%s, %d of them on a wiped data dir; %d partitions restored (%d records in %s), %d caught up (%d records in %s)",
		s.Kills, c.KillEvery, s.Wipes, r.restores, r.restored, r.restoreTook.Round(time.Millisecond), r.catchUps, r.caughtUp, r.catchUpTook.Round(time.Millisecond))
	p("               %d transactions aborted by rebalances, %d of them after their end was cancelled", r.aborted, r.endsCancelled)
	if s.OutageExits > 0 {
		p("               %d process starts ended during the broker outage (no broker to start against) and were restarted", s.OutageExits)
	}
	p("  drain:       %s from the end of posting to every POST acknowledged, group lag 0 and the current topic stable", s.Drain.Round(100*time.Millisecond))
	p("  topics:      events %d records; current %d records for %d messages", s.Topics.Events, s.Topics.CurrentRecords, s.Topics.Messages)
	if s.Posting > 0 {
		p("  throughput:  %.0f events/s acknowledged while posting; %.0f events/s folded end to end (events topic / posting+drain)",
			float64(g.AckedEvents)/s.Posting.Seconds(), float64(s.Topics.Events)/(s.Posting+s.Drain).Seconds())
	}
	for _, u := range s.UncleanStops {
		p("  unclean stop: %s", u)
	}
	if s.OK() {
		p("  violations:  none")
		return
	}
	p("  VIOLATIONS:")
	for _, v := range s.Violations {
		p("    %d × %s", v.Count, v.Check)
		for _, e := range v.Examples {
			p("        %s", strings.ReplaceAll(e, "\n", "\n        "))
		}
	}
}
