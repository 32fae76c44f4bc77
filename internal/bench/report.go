package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
)

// Report is what a run measured. Its JSON form is the bench's --json
// output; the headline fields come first. Rates are events per second of
// steady progress (see recorder.rate), latencies are in milliseconds, RSS
// is the child process's VmHWM.
type Report struct {
	Mode                 string  `json:"mode"`
	EventsPerSec         float64 `json:"events_per_sec"`
	BaselineEventsPerSec float64 `json:"baseline_events_per_sec"`
	Ratio                float64 `json:"ratio"`
	P50Ms                float64 `json:"p50_ms"`
	P99Ms                float64 `json:"p99_ms"`
	PeakRSSBytes         int64   `json:"peak_rss_bytes"`
	Messages             int     `json:"messages"`
	Events               int64   `json:"events"`

	// What the latency is, measured how.
	Latency         string  `json:"latency"`
	LatencySamples  int     `json:"latency_samples"`
	BaselineP50Ms   float64 `json:"baseline_p50_ms"`
	BaselineP99Ms   float64 `json:"baseline_p99_ms"`
	EventsProcessed int64   `json:"events_processed"` // by the system under test
	BaselineEvents  int64   `json:"baseline_events_processed"`
	Errors          int64   `json:"errors"` // POSTs answered other than 200, events never seen

	BaselinePeakRSSBytes int64   `json:"baseline_peak_rss_bytes"`
	CPUSeconds           float64 `json:"cpu_seconds"` // user+system of the system under test's processes
	BaselineCPUSeconds   float64 `json:"baseline_cpu_seconds"`

	// Pipeline mode.
	RatePerSec      int     `json:"rate_per_sec,omitempty"`
	DurationSeconds float64 `json:"duration_seconds,omitempty"`

	Broker        string  `json:"broker"`
	Brokers       string  `json:"brokers"`
	GoVersion     string  `json:"go_version"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
	NumCPU        int     `json:"num_cpu"`
	Partitions    int32   `json:"partitions"`
	TxnMaxRecords int     `json:"txn_max_records"`
	TxnMaxWaitMs  float64 `json:"txn_max_wait_ms"`
	Started       string  `json:"started"`
	Phases        []Phase `json:"phases"`
	// Processor mode with Config.Rounds > 1: every round; the figures
	// above are the round with the median ratio's.
	Rounds []Round `json:"rounds,omitempty"`
	// Processor mode: the system's drain cut into tenths of its events
	// (Tenth), and how much the CPU time per event grew from the second
	// tenth to the last, on the least-squares line through tenths 2-10
	// (cpuGrowth; -1 without them): in a run to 10M messages, the cost at
	// 9-10M messages in state over that at 1-2M. BaselineCPUGrowth is the
	// same of the baseline's drain, which keeps no state: a control for
	// what the broker and the machine add over the run.
	Tenths            []Tenth `json:"tenths,omitempty"`
	CPUGrowth         float64 `json:"cpu_growth,omitempty"`
	BaselineCPUGrowth float64 `json:"baseline_cpu_growth,omitempty"`

	Targets []Target `json:"targets"`

	Edge     *Report `json:"edge,omitempty"`     // ModeAll
	Pipeline *Report `json:"pipeline,omitempty"` // ModeAll

	sut, base *recorder // for plots
}

// Phase is one step of a run and how long it took.
type Phase struct {
	Name    string      `json:"name"`
	Seconds float64     `json:"seconds"`
	Detail  string      `json:"detail,omitempty"`
	Machine *MachineCPU `json:"machine,omitempty"` // nil where /proc/stat is missing
}

// Round is one baseline drain and one processor drain of a run with
// several (Config.Rounds).
type Round struct {
	Round                int     `json:"round"`
	EventsPerSec         float64 `json:"events_per_sec"`
	BaselineEventsPerSec float64 `json:"baseline_events_per_sec"`
	Ratio                float64 `json:"ratio"`
	CPUSeconds           float64 `json:"cpu_seconds"`
	BaselineCPUSeconds   float64 `json:"baseline_cpu_seconds"`
	PeakRSSBytes         int64   `json:"peak_rss_bytes"`
	EventsProcessed      int64   `json:"events_processed"` // by the processor
	BaselineEvents       int64   `json:"baseline_events_processed"`
	CPUGrowth            float64 `json:"cpu_growth"`          // as Report's
	BaselineCPUGrowth    float64 `json:"baseline_cpu_growth"` // as Report's
}

// flatGrowth is the most the processor's CPU time per event may grow from
// the second tenth of a run's events to the last (cpuGrowth) for issue 7's
// "flat from 1M to 10M messages" target: flat to within a tenth.
const flatGrowth = 1.1

// roundTenths rounds ts for the report.
func roundTenths(ts []Tenth) []Tenth {
	out := slices.Clone(ts)
	for i := range out {
		t := &out[i]
		t.Seconds, t.EventsPerSec, t.CPUMicros = round(t.Seconds, 3), round(t.EventsPerSec, 0), round(t.CPUMicros, 3)
		t.GCsPerMillion, t.AllocBytes = round(t.GCsPerMillion, 1), round(t.AllocBytes, 0)
	}
	return out
}

// Target is one of issue 7's targets and whether this run met it. Figures
// from a shared machine or a kfake broker are indications, not verdicts.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
}

func (r *Report) phase(name string, seconds float64, detail string, machine *MachineCPU) {
	r.Phases = append(r.Phases, Phase{Name: name, Seconds: round(seconds, 3), Detail: detail, Machine: machine})
}

// finish derives the ratio and rounds for printing.
func (r *Report) finish() {
	if r.BaselineEventsPerSec > 0 {
		r.Ratio = round(r.EventsPerSec/r.BaselineEventsPerSec, 3)
	}
	r.EventsPerSec = round(r.EventsPerSec, 0)
	r.BaselineEventsPerSec = round(r.BaselineEventsPerSec, 0)
	for _, p := range []*float64{&r.P50Ms, &r.P99Ms, &r.BaselineP50Ms, &r.BaselineP99Ms, &r.CPUSeconds, &r.BaselineCPUSeconds} {
		*p = round(*p, 3)
	}
}

// round keeps d decimals; NaN (no samples) becomes -1, which JSON can hold.
func round(v float64, d int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return -1
	}
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// WriteJSON writes r as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	return nil
}

// WriteTable writes r for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	r.table(tw)
	for _, sub := range []*Report{r.Edge, r.Pipeline} {
		if sub != nil {
			fmt.Fprintln(tw)
			sub.table(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	return nil
}

func (r *Report) table(w io.Writer) {
	mode := r.Mode
	if r.Edge != nil || r.Pipeline != nil {
		mode = ModeProcessor
	}
	fmt.Fprintf(w, "%s bench\t%s, %s, GOMAXPROCS %d, %d partitions, txn %d records / %gms wait\n",
		mode, r.Broker, r.GoVersion, r.GOMAXPROCS, r.Partitions, r.TxnMaxRecords, r.TxnMaxWaitMs)
	fmt.Fprintf(w, "workload\t%d events over %d messages", r.Events, r.Messages)
	if r.RatePerSec > 0 {
		fmt.Fprintf(w, ", offered %d/s for %gs", r.RatePerSec, r.DurationSeconds)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\twastatus\tbaseline\tratio\n")
	fmt.Fprintf(w, "events/s\t%.0f\t%.0f\t%.3f\n", r.EventsPerSec, r.BaselineEventsPerSec, r.Ratio)
	fmt.Fprintf(w, "p50 ms\t%s\t%s\t\n", ms(r.P50Ms), ms(r.BaselineP50Ms))
	fmt.Fprintf(w, "p99 ms\t%s\t%s\t\n", ms(r.P99Ms), ms(r.BaselineP99Ms))
	fmt.Fprintf(w, "peak RSS MiB\t%.1f\t%.1f\t\n", float64(r.PeakRSSBytes)/(1<<20), float64(r.BaselinePeakRSSBytes)/(1<<20))
	fmt.Fprintf(w, "CPU s\t%.2f\t%.2f\t\n", r.CPUSeconds, r.BaselineCPUSeconds)
	fmt.Fprintf(w, "events done\t%d\t%d\t\n", r.EventsProcessed, r.BaselineEvents)
	fmt.Fprintf(w, "latency\t%s (%d samples)\n", r.Latency, r.LatencySamples)
	if r.Errors > 0 {
		fmt.Fprintf(w, "errors\t%d\n", r.Errors)
	}
	for _, rd := range r.Rounds {
		fmt.Fprintf(w, "round %d\t%.0f\t%.0f\t%.3f (CPU s %.2f, %.2f; peak RSS MiB %.1f; CPU growth %s, baseline %s)\n", rd.Round, rd.EventsPerSec, rd.BaselineEventsPerSec, rd.Ratio, rd.CPUSeconds, rd.BaselineCPUSeconds, float64(rd.PeakRSSBytes)/(1<<20), growth(rd.CPUGrowth), growth(rd.BaselineCPUGrowth))
	}
	if len(r.Tenths) > 0 {
		fmt.Fprintf(w, "tenths\tevents/s\tCPU µs/event\tGCs/M events\talloc B/event\n")
		for i, t := range r.Tenths {
			fmt.Fprintf(w, "tenth %d\t%.0f\t%s\t%s\t%s\t(events %d-%d)\n", i+1, t.EventsPerSec, ms(t.CPUMicros), known(t.GCsPerMillion, 1), known(t.AllocBytes, 0), t.From, t.To)
		}
		fmt.Fprintf(w, "CPU growth\t%s\t%s\t(last tenth over the second, on the line through tenths 2-10)\n", growth(r.CPUGrowth), growth(r.BaselineCPUGrowth))
	}
	for _, p := range r.Phases {
		detail := p.Detail
		if p.Machine != nil {
			detail += "; " + p.Machine.String()
		}
		fmt.Fprintf(w, "phase %s\t%.3fs\t%s\n", p.Name, p.Seconds, detail)
	}
	for _, t := range r.Targets {
		met := "not met"
		if t.Met {
			met = "met"
		}
		fmt.Fprintf(w, "target %s\t%s\tgot %g\t%s\n", t.Name, t.Want, t.Got, met)
	}
}

func growth(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func ms(v float64) string { return known(v, 2) }

// known formats v with prec decimals, or "-" for a figure not read (< 0).
func known(v float64, prec int) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
