package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/gen"
	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/internal/proctest"
	"github.com/wastatus/wastatus/schemas"
)

var crashDuration = flag.Duration("crash.duration", 0,
	"how long TestCrashRecovery's chaos lasts (default 22s; also WASTATUS_CRASH_DURATION)")

// chaosDuration is the length of TestCrashRecovery's chaos phase.
func chaosDuration(t *testing.T) time.Duration {
	t.Helper()
	if *crashDuration > 0 {
		return *crashDuration
	}
	if v := os.Getenv("WASTATUS_CRASH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("WASTATUS_CRASH_DURATION=%q is not a positive duration", v)
		}
		return d
	}
	return 22 * time.Second
}

// crashPoints makes an instance SIGKILL itself between a transaction's
// outputs and its end, and between its commit and the store's commit (see
// cmd/wastatus/crash.go).
const crashPoints = "after-txn-commit:0.05,before-txn-end:0.05"

// TestCrashRecovery runs wastatus processors as OS processes on one group
// while a goroutine keeps posting signed webhooks (duplicates, group
// messages, any order) to an edge. For the whole chaos phase, every 1-3 s a
// random instance is SIGKILLed and restarted, sometimes on a deleted data
// dir (a lost disk), or an instance is added or stopped with SIGTERM (scale
// out and in, 1-4 instances); some instances also SIGKILL themselves at the
// processor's crash points. Then the chaos stops (an instance that still hits
// a crash point is started again without them) and, with at least two
// instances running and ready, the current topic read with read_committed must hold the fold of
// every acknowledged event for every message; no emitted state may be older
// than the one emitted before it for its message (status, any status's
// time, any participant) or equal to it; the events topic must hold exactly
// the acknowledged events; and nothing may be dead-lettered.
func TestCrashRecovery(t *testing.T) {
	s := seed(t)
	dur := chaosDuration(t)
	e := newCrashEnv(t)
	f := newFleet(t, e)
	r := rand.New(rand.NewPCG(s, 2))

	// p1 has the crash points and p2 has none, so both kinds always run.
	for i := range 3 {
		points := ""
		if i == 0 || i == 2 && r.IntN(2) == 0 {
			points = crashPoints
		}
		f.start(f.add(points))
	}
	f.waitReady(60*time.Second, f.running()...)

	url := e.startEdge("us-east-1")
	p := startPoster(t, url, s)

	began := time.Now()
	for time.Since(began) < dur {
		time.Sleep(time.Second + time.Duration(r.Int64N(int64(2*time.Second))))
		f.reap()
		running := f.running()
		switch x := r.Float64(); {
		case x < 0.2 && len(running) < 4:
			in := f.scaleOutTarget(r)
			f.logf("scale out: start %s", in.name)
			f.start(in)
		case x < 0.35 && len(running) > 1:
			in := running[r.IntN(len(running))]
			f.logf("scale in: stop %s", in.name)
			f.stop(in)
		default:
			in := running[r.IntN(len(running))]
			lose := r.Float64() < 0.25
			f.logf("SIGKILL %s (lose its data dir: %t)", in.name, lose)
			f.kill(in, lose)
		}
	}
	acked, posts, failed := p.halt()
	f.logf("chaos over: %d posts, %d events acknowledged, %d posts failed", posts, len(acked), len(failed))
	if len(failed) > 0 {
		t.Errorf("%d of %d posts were not acknowledged; first: %s", len(failed), posts, failed[0])
	}
	if len(acked) == 0 {
		t.Fatal("no post was acknowledged")
	}

	for len(f.running()) < 2 {
		in := f.scaleOutTarget(r)
		f.logf("start %s to have two instances", in.name)
		f.start(in)
	}
	f.calm = true
	want := gen.Fold(acked)
	reader := e.readCurrent()
	waitConverged(t, e, reader, want, 120*time.Second, f.reap)
	f.logf("current topic converged: %d messages", len(want))
	f.waitReady(60*time.Second, f.running()...)
	f.logf("%d instances ready", len(f.running()))

	reader.mu.Lock()
	if len(reader.backwards) > 0 {
		t.Errorf("%d states went backwards, first: %s", len(reader.backwards), reader.backwards[0])
	}
	reader.mu.Unlock()
	checkOutputLog(t, e, want)
	checkEventsTopic(t, e, acked)
	checkNoDeadLetters(t, e)
	for _, in := range f.running() {
		f.stop(in)
	}
	f.logf("crash points fired %d times; %d starts in all", f.crashes, len(f.logs))
	f.reportPrepared()
}

// TestStaleAndLostStores runs two instances A and B on one group in turns:
// A alone; then B alone on an empty data dir (it restores from the current
// topic); then A again, whose store is stale since B owned its partitions
// meanwhile (it catches up without emitting); then B on a deleted data dir
// together with A. Events are posted in every phase, for the same messages.
// After each phase the current topic holds the fold of every event posted;
// no instance emits anything while it restores or catches up; and no
// emitted state is ever older than, or equal to, the one before it.
func TestStaleAndLostStores(t *testing.T) {
	s := seed(t)
	e := newCrashEnv(t)
	f := newFleet(t, e)
	a, b := f.add(""), f.add("")
	reader := e.readCurrent()
	var (
		url    string
		posted []gen.Status
	)
	postBatch := func(k uint64) {
		t.Helper()
		events := gen.Events(gen.Options{Messages: 500, DupRate: 0.2, GroupRate: 0.1, Seed: s + k})
		postAll(t, url, events, s+k)
		posted = append(posted, events...)
		want := gen.Fold(posted)
		waitConverged(t, e, reader, want, 60*time.Second, func() bool { return false })
		f.logf("batch %d: %d events posted in all; the current topic holds their fold", k, len(posted))
	}
	// silent checks that starting in didn't emit anything: the output log
	// has as many records as before.
	silent := func(in *instance, before int) {
		t.Helper()
		if n := countRecords(t, e, e.current); n != before {
			t.Errorf("%s emitted %d records while it prepared its partitions", in.name, n-before)
		}
	}

	f.logf("A alone")
	f.start(a)
	f.waitReady(60*time.Second, a)
	url = e.startEdge("us-east-1")
	postBatch(1)
	f.stop(a)

	f.logf("B alone, on an empty data dir")
	before := countRecords(t, e, e.current)
	f.start(b)
	f.waitReady(60*time.Second, b)
	silent(b, before)
	requirePrepared(t, b, "restoring")
	postBatch(2)
	f.stop(b)

	f.logf("A again, on its stale store")
	before = countRecords(t, e, e.current)
	f.start(a)
	f.waitReady(60*time.Second, a)
	silent(a, before)
	requirePrepared(t, a, "catching up")
	postBatch(3)

	f.logf("B again, its data dir deleted, together with A")
	if err := os.RemoveAll(b.dir); err != nil {
		t.Fatal(err)
	}
	before = countRecords(t, e, e.current)
	f.start(b)
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if err := f.ready(a); err != nil {
			return err
		}
		if err := f.ready(b); err != nil {
			return err
		}
		if len(preparedEntries(b.log(), "restoring")) == 0 {
			return errors.New("B has not restored a partition yet")
		}
		return nil
	})
	silent(b, before)
	postBatch(4)

	reader.mu.Lock()
	if len(reader.backwards) > 0 {
		t.Errorf("%d states went backwards, first: %s", len(reader.backwards), reader.backwards[0])
	}
	reader.mu.Unlock()
	checkOutputLog(t, e, gen.Fold(posted))
	checkEventsTopic(t, e, posted)
	checkNoDeadLetters(t, e)
	f.stop(a)
	f.stop(b)
	f.reportPrepared()
}

// groupProtocol is the consumer group protocol the instances use:
// WASTATUS_CRASH_PROTOCOL, or consumer (KIP-848). With classic, a SIGKILLed
// member holds up every rebalance until its session times out (45 s, and
// the processor has no flag to lower it), so the chaos test takes minutes
// on a real broker and does not converge on kfake.
func groupProtocol() string {
	if p := os.Getenv("WASTATUS_CRASH_PROTOCOL"); p != "" {
		return p
	}
	return "consumer"
}

// newCrashEnv is newEnv on a kfake cluster whose KIP-848 groups fence a
// member that stopped heartbeating after 3 s rather than 45 s, so a group
// recovers from a SIGKILL as fast as the crash tests need. A real broker
// keeps its own setting, 45 s at least by default: there the chaos test
// takes about a minute longer.
func newCrashEnv(t *testing.T) *env {
	t.Helper()
	codec, err := schemas.NewCodec(schemas.IDs{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		t: t,
		cluster: kafkatest.New(t, kfake.BrokerConfigs(map[string]string{
			"group.consumer.session.timeout.ms":    "3000",
			"group.consumer.heartbeat.interval.ms": "500",
		})),
		codec:   codec,
		events:  kafkatest.Name(t, "events"),
		current: kafkatest.Name(t, "current"),
		dlq:     kafkatest.Name(t, "dlq"),
		group:   kafkatest.Name(t, "group"),
	}
}

// fleet runs wastatus process instances as OS processes on one group.
// Its methods run on the test's goroutine only.
type fleet struct {
	t      *testing.T
	e      *env
	bin    string
	root   string // data dirs
	logDir string // one log file per start of an instance
	began  time.Time

	all     []*instance
	logs    []string // every instance's log of every start, in start order
	crashes int      // crash points that fired

	// calm is set once the chaos is over: an instance that hits a crash
	// point from then on is started again without crash points.
	calm bool
}

// instance is one processor's identity: its name and data dir, which
// outlive its processes.
type instance struct {
	name   string
	dir    string
	points string // WASTATUS_CRASH_POINTS of its processes
	proc   *proctest.Proc
	addr   string
	starts int
}

// log is the log file of the instance's latest start.
func (in *instance) log() string { return in.proc.Log }

func newFleet(t *testing.T, e *env) *fleet {
	t.Helper()
	var flags []string
	if os.Getenv("WASTATUS_CRASH_RACE") != "" {
		flags = append(flags, "-race") // slower, and finds data races in the processes
	}
	f := &fleet{
		t:     t,
		e:     e,
		bin:   proctest.Build(t, "github.com/wastatus/wastatus/cmd/wastatus", flags...),
		root:  t.TempDir(),
		began: time.Now(),
	}
	f.logDir = filepath.Join(f.root, "logs")
	if dir := os.Getenv("WASTATUS_CRASH_LOGS"); dir != "" {
		f.logDir = filepath.Join(dir, kafkatest.Name(t, "logs"))
		t.Logf("instance logs kept in %s", f.logDir)
	}
	// Runs after every process was killed (cleanups run last in, first out).
	t.Cleanup(func() {
		if t.Failed() {
			f.dumpLogs()
		}
	})
	return f
}

func (f *fleet) logf(format string, args ...any) {
	f.t.Helper()
	f.t.Logf("%6.2fs "+format, append([]any{time.Since(f.began).Seconds()}, args...)...)
}

// add returns a new instance, not started, whose processes run with the
// crash points named by points (none when empty).
func (f *fleet) add(points string) *instance {
	name := fmt.Sprintf("p%d", len(f.all)+1)
	in := &instance{name: name, dir: filepath.Join(f.root, name), points: points}
	f.all = append(f.all, in)
	return in
}

// running returns the instances started and not stopped (some may have
// died since and not been reaped yet).
func (f *fleet) running() []*instance {
	var out []*instance
	for _, in := range f.all {
		if in.proc != nil {
			out = append(out, in)
		}
	}
	return out
}

// scaleOutTarget returns a stopped instance (whose store is now stale) or,
// half of the time or when none is stopped, a new one.
func (f *fleet) scaleOutTarget(r *rand.Rand) *instance {
	var stopped []*instance
	for _, in := range f.all {
		if in.proc == nil {
			stopped = append(stopped, in)
		}
	}
	if len(stopped) > 0 && r.IntN(2) == 0 {
		return stopped[r.IntN(len(stopped))]
	}
	if r.IntN(2) == 0 {
		return f.add(crashPoints)
	}
	return f.add("")
}

// start starts a process for in, on a fresh HTTP port.
func (f *fleet) start(in *instance) {
	f.t.Helper()
	in.starts++
	in.addr = proctest.FreeAddr(f.t)
	log := filepath.Join(f.logDir, fmt.Sprintf("%s.%d.log", in.name, in.starts))
	in.proc = proctest.Start(f.t, f.bin, log, []string{"WASTATUS_CRASH_POINTS=" + in.points},
		"process",
		"--brokers", strings.Join(f.e.cluster.Brokers, ","),
		"--events-topic", f.e.events,
		"--current-topic", f.e.current,
		"--dlq-topic", f.e.dlq,
		"--group", f.e.group,
		"--group-protocol", groupProtocol(),
		"--partitions", "6",
		"--data-dir", in.dir,
		"--http-addr", in.addr,
		"--log-format", "json",
		"--log-level", "info",
	)
	f.logs = append(f.logs, log)
}

// kill SIGKILLs in, deletes its data dir if lose, and starts it again.
func (f *fleet) kill(in *instance, lose bool) {
	f.t.Helper()
	in.proc.Kill()
	if lose {
		if err := os.RemoveAll(in.dir); err != nil {
			f.t.Fatal(err)
		}
	}
	f.start(in)
}

// stop stops in with SIGTERM, expecting a clean exit (or a crash point's
// SIGKILL on the way out). It first waits until in serves HTTP, which it
// does only once its handler of SIGTERM is installed.
func (f *fleet) stop(in *instance) {
	f.t.Helper()
	kafkatest.Eventually(f.t, 30*time.Second, func() error {
		if ended, _ := in.proc.Exited(); ended {
			return nil
		}
		return f.get(in, "/healthz")
	})
	err := in.proc.Stop(45 * time.Second)
	if err != nil && !(in.points != "" && proctest.Signaled(err, syscall.SIGKILL)) {
		f.t.Errorf("%s did not stop cleanly: %v\n%s", in.name, err, logTail(in.log(), 20))
	}
	in.proc = nil
}

// reap starts again every instance that ended on its own. A crash point's
// SIGKILL is expected; anything else fails the test. Once the fleet is calm
// the instance is started without crash points, so each can disrupt the
// convergence once at most. reap reports whether a crash point fired: an
// instance that ended otherwise is a failure, not a disruption to wait out.
func (f *fleet) reap() bool {
	f.t.Helper()
	crashed := false
	for _, in := range f.running() {
		ended, err := in.proc.Exited()
		if !ended {
			continue
		}
		if in.points != "" && proctest.Signaled(err, syscall.SIGKILL) {
			f.crashes++
			crashed = true
			if f.calm {
				in.points = ""
				f.logf("%s hit a crash point; restarting it without crash points", in.name)
			} else {
				f.logf("%s hit a crash point; restarting it", in.name)
			}
		} else {
			f.t.Errorf("%s ended on its own: %v\n%s", in.name, err, logTail(in.log(), 20))
		}
		f.start(in)
	}
	return crashed
}

// ready returns nil once in answers 200 on /readyz.
func (f *fleet) ready(in *instance) error {
	if ended, err := in.proc.Exited(); ended {
		return fmt.Errorf("%s ended: %v", in.name, err)
	}
	return f.get(in, "/readyz")
}

// get returns nil if in answers 200 to GET path.
func (f *fleet) get(in *instance, path string) error {
	ctx, cancel := context.WithTimeout(f.t.Context(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", in.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %d %s", in.name, path, resp.StatusCode, strings.Join(strings.Fields(string(b)), " "))
	}
	return nil
}

// waitReady polls until every one of ins is ready, restarting the ones
// that hit a crash point meanwhile.
func (f *fleet) waitReady(timeout time.Duration, ins ...*instance) {
	f.t.Helper()
	kafkatest.Eventually(f.t, timeout, func() error {
		f.reap()
		for _, in := range ins {
			if err := f.ready(in); err != nil {
				return err
			}
		}
		return nil
	})
}

// dumpLogs prints the tail of the latest log of every instance and the
// warnings and errors of all of them.
func (f *fleet) dumpLogs() {
	for _, in := range f.all {
		if in.starts > 0 {
			path := filepath.Join(f.logDir, fmt.Sprintf("%s.%d.log", in.name, in.starts))
			f.t.Logf("tail of %s:\n%s", filepath.Base(path), logTail(path, 25))
		}
	}
	for _, path := range f.logs {
		var lines []string
		forEachLogLine(path, func(m map[string]any, line string) {
			if m["level"] == "WARN" || m["level"] == "ERROR" || m["msg"] == nil {
				lines = append(lines, line)
			}
		})
		if len(lines) > 20 {
			lines = append(lines[:20], fmt.Sprintf("... and %d more", len(lines)-20))
		}
		if len(lines) > 0 {
			f.t.Logf("warnings and errors of %s:\n%s", filepath.Base(path), strings.Join(lines, "\n"))
		}
	}
}

// reportPrepared logs how long the restores and catch-ups of every
// instance took, from their "partition prepared" log lines.
func (f *fleet) reportPrepared() {
	f.t.Helper()
	type sum struct {
		n, records, maxRecords int64
		took, maxTook          time.Duration
	}
	var restores, catchUps sum
	for _, path := range f.logs {
		for _, m := range preparedEntries(path, "") {
			s := &catchUps
			if strings.Contains(m.why, "restoring") {
				s = &restores
			}
			s.n++
			s.records += m.records
			s.took += m.took
			if m.records > s.maxRecords {
				s.maxRecords, s.maxTook = m.records, m.took
			}
		}
	}
	for _, x := range []struct {
		what string
		s    sum
	}{{"restores", restores}, {"catch-ups", catchUps}} {
		rate := 0.0
		if x.s.took > 0 {
			rate = float64(x.s.records) / x.s.took.Seconds()
		}
		f.logf("%s: %d partitions, %d records in %s (%.0f records/s); largest %d records in %s",
			x.what, x.s.n, x.s.records, x.s.took, rate, x.s.maxRecords, x.s.maxTook)
	}
}

// prepared is one "partition prepared" log line.
type prepared struct {
	partition int
	why       string
	records   int64
	took      time.Duration
}

// preparedEntries returns the "partition prepared" lines of the log at path
// whose reason contains why.
func preparedEntries(path, why string) []prepared {
	var out []prepared
	forEachLogLine(path, func(m map[string]any, _ string) {
		if m["msg"] != "partition prepared" {
			return
		}
		w, _ := m["why"].(string)
		if !strings.Contains(w, why) {
			return
		}
		part, _ := m["partition"].(float64)
		records, _ := m["records"].(float64)
		took, _ := m["took"].(float64) // slog's JSON handler writes nanoseconds
		out = append(out, prepared{int(part), w, int64(records), time.Duration(took)})
	})
	return out
}

// requirePrepared fails t unless in's latest log says it prepared at least
// one partition for a reason containing why.
func requirePrepared(t *testing.T, in *instance, why string) {
	t.Helper()
	got := preparedEntries(in.log(), why)
	if len(got) == 0 {
		t.Errorf("%s prepared no partition by %q:\n%s", in.name, why, logTail(in.log(), 20))
		return
	}
	var parts []int
	for _, p := range got {
		parts = append(parts, p.partition)
	}
	slices.Sort(parts)
	t.Logf("%s prepared partitions %v by %q", in.name, parts, why)
}

// logTail returns the last n lines of the log at path, leaving out
// Pebble's.
func logTail(path string, n int) string {
	var lines []string
	forEachLogLine(path, func(m map[string]any, line string) {
		if m["msg"] != "pebble" {
			lines = append(lines, line)
		}
	})
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// forEachLogLine calls fn with every line of the JSON log at path, decoded
// (nil for a line that is not JSON, such as a panic's).
func forEachLogLine(path string, fn func(m map[string]any, line string)) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = nil
		}
		fn(m, sc.Text())
	}
}

// postEvery paces the poster: about 40 posts, 500 events, a second.
const postEvery = 25 * time.Millisecond

// poster keeps posting webhooks to an edge until halted, and keeps every
// event the edge acknowledged.
type poster struct {
	url  string
	seed uint64
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	acked  []gen.Status
	posts  int
	failed []string
}

// startPoster starts posting rounds of events to url: every round is a new
// workload over the same messages, so later rounds move states that earlier
// ones set. It is halted when t ends, if not before.
func startPoster(t *testing.T, url string, s uint64) *poster {
	p := &poster{url: url, seed: s, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	t.Cleanup(func() { p.halt() })
	return p
}

func (p *poster) run() {
	defer close(p.done)
	hc := &http.Client{Timeout: time.Minute}
	tick := time.NewTicker(postEvery)
	defer tick.Stop()
	for round := uint64(0); ; round++ {
		events := gen.Events(gen.Options{Messages: 1000, DupRate: 0.2, GroupRate: 0.1, Seed: p.seed + round})
		for _, chunk := range gen.Split(events, 25, p.seed+round) {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			err := postOnce(hc, p.url, gen.Webhook(chunk))
			p.mu.Lock()
			p.posts++
			if err != nil {
				p.failed = append(p.failed, err.Error())
			} else {
				p.acked = append(p.acked, chunk...)
			}
			p.mu.Unlock()
		}
	}
}

// halt stops posting after the post in flight and returns the events
// acknowledged, the number of posts and why posts failed.
func (p *poster) halt() (acked []gen.Status, posts int, failed []string) {
	p.once.Do(func() { close(p.stop) })
	<-p.done // a post is bounded by the client's timeout
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked), p.posts, slices.Clone(p.failed)
}

// postOnce posts a signed webhook and returns an error unless the edge
// answered 200.
func postOnce(hc *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", edge.Sign(body, testSecret))
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST: %d %s", resp.StatusCode, b)
	}
	return nil
}

// waitConverged polls r until the current topic holds a state matching
// want for every message, and no other message, calling each before every
// poll. It allows timeout from the start and from every time each reports
// a disruption (a crash point fired; an instance hits one at most once once
// the fleet is calm): a killed group member holds its partitions until its
// session times out, 45 s on a real broker. After
// that it fails t, saying how far the group got and what the topics hold of
// the first message that differs.
func waitConverged(t *testing.T, e *env, r *currentReader, want map[string]gen.Expected, timeout time.Duration, each func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if each() {
			deadline = time.Now().Add(timeout)
		}
		wamid, err := converged(t, r, want)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the current topic did not converge in %s: %v; %s", timeout, err, groupLag(t, e))
			if wamid != "" {
				explain(t, e, wamid)
			}
			t.FailNow()
		}
	}
}

// converged polls r and returns nil once the current topic holds a state
// matching want for every message, and no other message; else the first
// message that differs, if any, and how.
func converged(t *testing.T, r *currentReader, want map[string]gen.Expected) (string, error) {
	t.Helper()
	if err := r.poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for wamid, x := range want {
		got, ok := r.latest[wamid]
		if !ok {
			return wamid, fmt.Errorf("%s: no state in the current topic yet (%d of %d messages seen)", wamid, len(r.latest), len(want))
		}
		if err := matches(got, x); err != nil {
			return wamid, err
		}
	}
	if len(r.latest) != len(want) {
		return "", fmt.Errorf("the current topic has %d messages, want %d", len(r.latest), len(want))
	}
	return "", nil
}

// explain logs every event of wamid in the events topic and every state of
// it in the current topic, with their offsets, to find in the instances'
// logs which of them lost what.
func explain(t *testing.T, e *env, wamid string) {
	t.Helper()
	var lines []string
	readLog(t, e, e.events, func(r *kgo.Record) {
		if string(r.Key) != wamid {
			return
		}
		ev, err := e.codec.DecodeStatusEvent(r.Value)
		if err != nil {
			lines = append(lines, fmt.Sprintf("events[%d]@%d: %v", r.Partition, r.Offset, err))
			return
		}
		lines = append(lines, fmt.Sprintf("events[%d]@%d: %s at %d participant %q", r.Partition, r.Offset, ev.Status, ev.Timestamp, ev.RecipientParticipantID))
	})
	readLog(t, e, e.current, func(r *kgo.Record) {
		if string(r.Key) != wamid {
			return
		}
		v, err := e.codec.DecodeMessageStatus(r.Value)
		if err != nil {
			lines = append(lines, fmt.Sprintf("current[%d]@%d: %v", r.Partition, r.Offset, err))
			return
		}
		lines = append(lines, fmt.Sprintf("current[%d]@%d: %s sent %d delivered %d read %d played %d failed %d, %d participants",
			r.Partition, r.Offset, v.Status, v.SentAt, v.DeliveredAt, v.ReadAt, v.PlayedAt, v.FailedAt, len(v.Participants)))
	})
	t.Logf("%s in the topics:\n%s", wamid, strings.Join(lines, "\n"))
}

// groupLag describes, per partition of the events topic, the group's
// committed offset and the end of the log, for a failure message.
func groupLag(t *testing.T, e *env) string {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.Brokers...))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, e.events)
	if err != nil {
		return fmt.Sprintf("events topic ends: %v", err)
	}
	committed, err := adm.FetchOffsets(ctx, e.group)
	if err != nil {
		return fmt.Sprintf("group offsets: %v", err)
	}
	var parts []string
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(e.events, o.Partition)
		parts = append(parts, fmt.Sprintf("%d: %d of %d", o.Partition, c.At, o.Offset))
	})
	slices.Sort(parts)
	return "group's committed offsets of the events topic: " + strings.Join(parts, ", ")
}

// readLog reads topic from its start to its end with read_committed and
// calls fn for every data record, in offset order within a partition. It
// first waits until no transaction is open on topic, so the end is final.
func readLog(t *testing.T, e *env, topic string, fn func(*kgo.Record)) {
	t.Helper()
	adm := e.admin()
	var ends kadm.ListedOffsets
	kafkatest.Eventually(t, 60*time.Second, func() error {
		stable, err := adm.ListCommittedOffsets(t.Context(), topic)
		if err == nil {
			err = stable.Error()
		}
		if err != nil {
			return err
		}
		high, err := adm.ListEndOffsets(t.Context(), topic)
		if err == nil {
			err = high.Error()
		}
		if err != nil {
			return err
		}
		var open []string
		stable.Each(func(o kadm.ListedOffset) {
			if h, _ := high.Lookup(topic, o.Partition); h.Offset != o.Offset {
				open = append(open, fmt.Sprintf("partition %d: stable %d, end %d", o.Partition, o.Offset, h.Offset))
			}
		})
		if len(open) > 0 {
			return fmt.Errorf("%s has open transactions: %s", topic, strings.Join(open, "; "))
		}
		ends = stable
		return nil
	})
	left := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.cluster.Brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v; partitions left to read, with their ends: %v", topic, ctx.Err(), left)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("reading %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
			if r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
}

// countRecords returns the number of data records of topic (read_committed).
func countRecords(t *testing.T, e *env, topic string) int {
	t.Helper()
	n := 0
	readLog(t, e, topic, func(*kgo.Record) { n++ })
	return n
}

// checkOutputLog reads the whole current topic and checks that every state
// emitted for a message is newer than the one emitted before it, in every
// field the lattice orders, and that the last states are want.
func checkOutputLog(t *testing.T, e *env, want map[string]gen.Expected) {
	t.Helper()
	last := make(map[string]schemas.MessageStatus)
	var older, repeated []string
	records := 0
	readLog(t, e, e.current, func(r *kgo.Record) {
		records++
		v, err := e.codec.DecodeMessageStatus(r.Value)
		if err != nil {
			t.Fatalf("%s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		if prev, ok := last[v.WAMID]; ok {
			if err := notOlder(prev, v); err != nil {
				older = append(older, fmt.Sprintf("partition %d offset %d: %v", r.Partition, r.Offset, err))
			} else if reflect.DeepEqual(prev, v) {
				repeated = append(repeated, fmt.Sprintf("partition %d offset %d: %s emitted again unchanged", r.Partition, r.Offset, v.WAMID))
			}
		}
		last[v.WAMID] = v
	})
	t.Logf("current topic: %d records for %d messages", records, len(last))
	if len(older) > 0 {
		t.Errorf("%d emitted states are older than the state emitted before them; first: %s", len(older), older[0])
	}
	if len(repeated) > 0 {
		t.Errorf("%d states were emitted again unchanged; first: %s", len(repeated), repeated[0])
	}
	for wamid, x := range want {
		if err := matches(last[wamid], x); err != nil {
			t.Errorf("last state in the log: %v", err)
		}
	}
	if len(last) != len(want) {
		t.Errorf("the current topic has %d messages, want %d", len(last), len(want))
	}
}

// notOlder returns an error if cur is below prev in the lattice anywhere:
// a lower status, a status time lost or later, a participant lost or older,
// a first receive time lost or later.
func notOlder(prev, cur schemas.MessageStatus) error {
	if err := timesNotOlder(prev.Status, cur.Status,
		[5]int64{prev.SentAt, prev.DeliveredAt, prev.ReadAt, prev.PlayedAt, prev.FailedAt},
		[5]int64{cur.SentAt, cur.DeliveredAt, cur.ReadAt, cur.PlayedAt, cur.FailedAt}); err != nil {
		return fmt.Errorf("%s: %w", cur.WAMID, err)
	}
	if prev.FirstReceivedAt != 0 && (cur.FirstReceivedAt == 0 || cur.FirstReceivedAt > prev.FirstReceivedAt) {
		return fmt.Errorf("%s: first_received_at %d after %d", cur.WAMID, cur.FirstReceivedAt, prev.FirstReceivedAt)
	}
	parts := make(map[string]schemas.Participant, len(cur.Participants))
	for _, p := range cur.Participants {
		parts[p.ID] = p
	}
	for _, p := range prev.Participants {
		c, ok := parts[p.ID]
		if !ok {
			return fmt.Errorf("%s: participant %s lost", cur.WAMID, p.ID)
		}
		if err := timesNotOlder(p.Status, c.Status,
			[5]int64{p.SentAt, p.DeliveredAt, p.ReadAt, p.PlayedAt, p.FailedAt},
			[5]int64{c.SentAt, c.DeliveredAt, c.ReadAt, c.PlayedAt, c.FailedAt}); err != nil {
			return fmt.Errorf("%s participant %s: %w", cur.WAMID, p.ID, err)
		}
	}
	return nil
}

func timesNotOlder(prevStatus, curStatus string, prev, cur [5]int64) error {
	if rankOf(curStatus) < rankOf(prevStatus) {
		return fmt.Errorf("status %s after %s", curStatus, prevStatus)
	}
	names := [5]string{"sent", "delivered", "read", "played", "failed"}
	for i := range prev {
		if prev[i] != 0 && (cur[i] == 0 || cur[i] > prev[i]) {
			return fmt.Errorf("%s_at %d after %d", names[i], cur[i], prev[i])
		}
	}
	return nil
}

// eventKey identifies an event by what the plain model folds.
func eventKey(wamid, status string, ts int64, participant string) string {
	return fmt.Sprintf("%s|%s|%d|%s", wamid, status, ts, participant)
}

// checkEventsTopic checks that the events topic holds exactly the events
// the edge acknowledged, duplicates included.
func checkEventsTopic(t *testing.T, e *env, acked []gen.Status) {
	t.Helper()
	want := make(map[string]int)
	for _, s := range acked {
		want[eventKey(s.WAMID, s.Status, s.Timestamp, s.Participant)]++
	}
	got := make(map[string]int)
	n := 0
	readLog(t, e, e.events, func(r *kgo.Record) {
		n++
		ev, err := e.codec.DecodeStatusEvent(r.Value)
		if err != nil {
			t.Fatalf("%s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		got[eventKey(ev.WAMID, ev.Status, ev.Timestamp, ev.RecipientParticipantID)]++
	})
	if n != len(acked) {
		t.Errorf("the events topic holds %d records, want the %d events acknowledged", n, len(acked))
	}
	var diffs []string
	for k, w := range want {
		if got[k] != w {
			diffs = append(diffs, fmt.Sprintf("%s: %d in the topic, %d acknowledged", k, got[k], w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %d in the topic, never acknowledged", k, g))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("%d events differ between the events topic and the acknowledged posts; first: %s", len(diffs), diffs[0])
	}
}

// checkNoDeadLetters checks that nothing was dead-lettered: every event
// posted is valid.
func checkNoDeadLetters(t *testing.T, e *env) {
	t.Helper()
	if n := countRecords(t, e, e.dlq); n != 0 {
		t.Errorf("%d records in the dead-letter topic", n)
	}
}
