package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/internal/proctest"
)

// benchReport is the part of `wastatus bench --json` that users script
// against.
type benchReport struct {
	Mode                 string   `json:"mode"`
	EventsPerSec         *float64 `json:"events_per_sec"`
	BaselineEventsPerSec *float64 `json:"baseline_events_per_sec"`
	Ratio                *float64 `json:"ratio"`
	P50Ms                *float64 `json:"p50_ms"`
	P99Ms                *float64 `json:"p99_ms"`
	PeakRSSBytes         int64    `json:"peak_rss_bytes"`
	Messages             int      `json:"messages"`
	Events               int64    `json:"events"`
	EventsProcessed      int64    `json:"events_processed"`
	BaselineEvents       int64    `json:"baseline_events_processed"`
	Errors               int64    `json:"errors"`
	Broker               string   `json:"broker"`
	GOMAXPROCS           int      `json:"gomaxprocs"`
	Phases               []struct {
		Name    string  `json:"name"`
		Seconds float64 `json:"seconds"`
		Machine *struct {
			CPUs       int     `json:"cpus"`
			BusyCores  float64 `json:"busy_cores"`
			IdleCores  float64 `json:"idle_cores"`
			StealCores float64 `json:"steal_cores"`
		} `json:"machine"`
	} `json:"phases"`
	Tenths []struct {
		From         int64   `json:"from_event"`
		To           int64   `json:"to_event"`
		EventsPerSec float64 `json:"events_per_sec"`
		CPUMicros    float64 `json:"cpu_us_per_event"`
		GCs          float64 `json:"gcs_per_million_events"`
		AllocBytes   float64 `json:"alloc_bytes_per_event"`
	} `json:"tenths"`
	CPUGrowth         float64 `json:"cpu_growth"`
	BaselineCPUGrowth float64 `json:"baseline_cpu_growth"`
	Rounds            []struct {
		Round                int     `json:"round"`
		EventsPerSec         float64 `json:"events_per_sec"`
		BaselineEventsPerSec float64 `json:"baseline_events_per_sec"`
		Ratio                float64 `json:"ratio"`
		PeakRSSBytes         int64   `json:"peak_rss_bytes"`
		EventsProcessed      int64   `json:"events_processed"`
		BaselineEvents       int64   `json:"baseline_events_processed"`
	} `json:"rounds"`
	Targets []struct {
		Name string  `json:"name"`
		Got  float64 `json:"got"`
	} `json:"targets"`
}

// TestBenchModes runs a short bench of each mode on the embedded broker,
// the way a user does (the binary, its children, --json), and checks that
// the report is complete and adds up.
func TestBenchModes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs child processes")
	}
	bin := proctest.Build(t, "github.com/wastatus/wastatus/cmd/wastatus")
	for _, tc := range []struct {
		mode   string
		args   []string
		want   int64 // events the report must count
		rounds int   // --rounds given
		tenths bool  // a drain long enough to cut into tenths
	}{
		{"processor", []string{"--events", "3000", "--messages", "800", "--partitions", "3"}, 3000, 0, false},
		{"processor", []string{"--events", "3000", "--messages", "800", "--partitions", "3", "--rounds", "3"}, 3000, 3, false},
		// Small transactions: a drain of a few seconds, sampled every 100 ms.
		{"processor", []string{"--events", "500000", "--messages", "150000", "--partitions", "3", "--txn-max-records", "1000"}, 500000, 0, true},
		{"edge", []string{"--events", "1500", "--partitions", "3", "--concurrency", "8"}, 1500, 0, false},
		{"pipeline", []string{"--rate", "500", "--duration", "2s", "--partitions", "3"}, 1000, 0, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			plot := filepath.Join(t.TempDir(), "bench.png")
			args := append([]string{"bench", "--mode", tc.mode, "--json", "--plot", plot}, tc.args...)
			cmd := exec.CommandContext(t.Context(), bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("wastatus %v: %v\nstderr:\n%s", args, err, stderr.String())
			}
			dec := json.NewDecoder(&stdout)
			var r benchReport
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout.String())
			}
			if dec.More() {
				t.Fatalf("stdout holds more than one JSON value")
			}
			for name, v := range map[string]*float64{
				"events_per_sec": r.EventsPerSec, "baseline_events_per_sec": r.BaselineEventsPerSec,
				"ratio": r.Ratio, "p50_ms": r.P50Ms, "p99_ms": r.P99Ms,
			} {
				if v == nil {
					t.Fatalf("%s missing", name)
				}
			}
			switch {
			case r.Mode != tc.mode:
				t.Errorf("mode %q, want %q", r.Mode, tc.mode)
			case r.Events != tc.want:
				t.Errorf("events %d, want %d", r.Events, tc.want)
			case r.EventsProcessed != r.Events || r.BaselineEvents != r.Events:
				t.Errorf("events %d, processed %d by wastatus and %d by the baseline", r.Events, r.EventsProcessed, r.BaselineEvents)
			case r.Errors != 0:
				t.Errorf("errors %d", r.Errors)
			case r.Messages <= 0 || int64(r.Messages) > r.Events:
				t.Errorf("messages %d for %d events", r.Messages, r.Events)
			case *r.EventsPerSec <= 0 || *r.BaselineEventsPerSec <= 0:
				t.Errorf("events/s %v, baseline %v", *r.EventsPerSec, *r.BaselineEventsPerSec)
			case math.Abs(*r.Ratio - *r.EventsPerSec / *r.BaselineEventsPerSec) > 0.01:
				t.Errorf("ratio %v, want events_per_sec/baseline %v", *r.Ratio, *r.EventsPerSec / *r.BaselineEventsPerSec)
			case *r.P50Ms < 0 || *r.P99Ms < *r.P50Ms:
				t.Errorf("p50 %v ms, p99 %v ms", *r.P50Ms, *r.P99Ms)
			case r.PeakRSSBytes <= 0:
				t.Errorf("peak rss %d", r.PeakRSSBytes)
			case r.Broker != "kfake (in-process)" || r.GOMAXPROCS <= 0 || len(r.Phases) == 0:
				t.Errorf("run description: broker %q, GOMAXPROCS %d, phases %v", r.Broker, r.GOMAXPROCS, r.Phases)
			}
			// Where the kernel counts CPU time, each phase says what the
			// machine's CPUs did: shares of them, adding up to all.
			if _, err := os.Stat("/proc/stat"); err == nil {
				for _, p := range r.Phases {
					m := p.Machine
					if m == nil {
						t.Errorf("phase %s: no machine CPU", p.Name)
						continue
					}
					if sum := m.BusyCores + m.IdleCores + m.StealCores; m.CPUs <= 0 || math.Abs(sum-float64(m.CPUs)) > 0.05 {
						t.Errorf("phase %s: machine %+v: busy, idle and steal add up to %.2f of %d CPUs", p.Name, *m, sum, m.CPUs)
					}
				}
			}
			if tc.rounds > 0 {
				checkRounds(t, &r, tc.rounds)
			}
			if tc.tenths {
				checkTenths(t, &r)
			}
			if png, err := readHead(plot, 8); err != nil || !bytes.Equal(png, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("--plot wrote no PNG: %q, %v", png, err)
			}
		})
	}
}

// checkTenths checks that a processor's drain is cut into ten
// consecutive parts from its first progress to the last event, each with
// a rate and (where /proc counts CPU time) a CPU time per event, and that
// the report gives the CPU growth.
func checkTenths(t *testing.T, r *benchReport) {
	t.Helper()
	ts := r.Tenths
	if len(ts) != 10 {
		t.Fatalf("%d tenths, want 10: %+v", len(ts), ts)
	}
	_, err := os.Stat("/proc/self/stat")
	withCPU := err == nil
	for i, x := range ts {
		if (i == 0 && x.From <= 0) || (i > 0 && x.From != ts[i-1].To) || x.To <= x.From || x.EventsPerSec <= 0 || (withCPU && x.CPUMicros <= 0) {
			t.Errorf("tenth %d: %+v (the one before ended at event %d)", i+1, x, ts[max(i-1, 0)].To)
		}
	}
	if ts[9].To != r.Events {
		t.Errorf("the last tenth ends at event %d, want %d", ts[9].To, r.Events)
	}
	// The collector's figures come from the processor's /metrics, read
	// where each tenth starts and ends; a read that times out on a busy
	// machine costs the two tenths it bounds theirs, and only that.
	read := 0
	for i, x := range ts {
		switch {
		case x.GCs == -1 && x.AllocBytes == -1:
		case x.GCs >= 0 && x.AllocBytes > 0:
			read++
		default:
			t.Errorf("tenth %d: %v collections per million events, %v bytes allocated per event", i+1, x.GCs, x.AllocBytes)
		}
	}
	if read < 8 {
		t.Errorf("the collector's figures of %d tenths, want 8 at least: %+v", read, ts)
	}
	// internal/bench TestTenths checks how the growth is computed; here,
	// that the report carries it. The baseline drains this small run on
	// kfake in a fraction of a second, too short at times to be cut into
	// tenths between its progress samples, or for each tenth to count a
	// CPU tick of the kernel's (10 ms): its growth is then -1, unknown
	// (one CI run saw it), and never 0 or below.
	if withCPU && r.CPUGrowth <= 0 || !withCPU && r.CPUGrowth != -1 ||
		r.BaselineCPUGrowth != -1 && (!withCPU || r.BaselineCPUGrowth <= 0) {
		t.Errorf("CPU growth %v, baseline's %v, with CPU times read %v", r.CPUGrowth, r.BaselineCPUGrowth, withCPU)
	}
}

// checkRounds checks a report of --rounds n: every round listed with a
// baseline and a processor phase of its own, the headline figures those of
// the round with the median ratio, and the peak RSS target the largest of
// any round's.
func checkRounds(t *testing.T, r *benchReport, n int) {
	t.Helper()
	if len(r.Rounds) != n {
		t.Fatalf("%d rounds listed, want %d", len(r.Rounds), n)
	}
	var phases []string
	for _, p := range r.Phases {
		phases = append(phases, p.Name)
	}
	ratios := make([]float64, 0, n)
	var peak int64
	for i, rd := range r.Rounds {
		if rd.Round != i+1 || rd.EventsProcessed != r.Events || rd.BaselineEvents != r.Events || rd.EventsPerSec <= 0 || rd.BaselineEventsPerSec <= 0 || math.Abs(rd.Ratio-rd.EventsPerSec/rd.BaselineEventsPerSec) > 0.01 {
			t.Errorf("round %d: %+v", i+1, rd)
		}
		for _, name := range []string{fmt.Sprintf("baseline %d", i+1), fmt.Sprintf("processor %d", i+1)} {
			if !slices.Contains(phases, name) {
				t.Errorf("no phase %q in %v", name, phases)
			}
		}
		ratios = append(ratios, rd.Ratio)
		peak = max(peak, rd.PeakRSSBytes)
	}
	slices.Sort(ratios)
	if median := ratios[(n-1)/2]; *r.Ratio != median {
		t.Errorf("ratio %v, want the median round's %v (rounds %v)", *r.Ratio, median, ratios)
	}
	for _, tg := range r.Targets {
		if tg.Name == "processor peak RSS MiB" && math.Abs(tg.Got-float64(peak)/(1<<20)) > 0.1 {
			t.Errorf("peak RSS target got %v MiB, want the largest round's %.1f", tg.Got, float64(peak)/(1<<20))
		}
	}
}

// TestBenchRealBroker runs processor mode against the real broker of
// WASTATUS_TEST_BROKERS, as docs/PERFORMANCE.md has the 10M-message run
// done: the bench creates its topics there, both systems drain them, and
// the run's topics are gone afterwards.
func TestBenchRealBroker(t *testing.T) {
	c := kafkatest.RequireReal(t)
	bin := proctest.Build(t, "github.com/wastatus/wastatus/cmd/wastatus")
	before := benchTopics(t, c.Brokers)
	args := []string{"bench", "--mode", "processor", "--json", "--brokers", strings.Join(c.Brokers, ","),
		"--events", "20000", "--messages", "6000", "--partitions", "3"}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wastatus %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	var r benchReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout.String())
	}
	switch {
	case r.Broker != "kafka":
		t.Errorf("broker %q, want kafka", r.Broker)
	case r.Events != 20000 || r.EventsProcessed != r.Events || r.BaselineEvents != r.Events || r.Errors != 0:
		t.Errorf("events %d, processed %d by wastatus and %d by the baseline, errors %d", r.Events, r.EventsProcessed, r.BaselineEvents, r.Errors)
	case r.PeakRSSBytes <= 0:
		t.Errorf("peak rss %d", r.PeakRSSBytes)
	}
	// Topic deletion reaches the broker's metadata shortly after it is
	// acknowledged.
	kafkatest.Eventually(t, 30*time.Second, func() error {
		if after := benchTopics(t, c.Brokers); !slices.Equal(after, before) {
			return fmt.Errorf("bench topics %v after the run, %v before", after, before)
		}
		return nil
	})
}

// benchTopics lists the bench's topics on brokers, with a new client each
// time (a client may answer a listing from cached metadata).
func benchTopics(t *testing.T, brokers []string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, "bench.") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func readHead(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = io.ReadFull(f, b)
	return b, err
}
