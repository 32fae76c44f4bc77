package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// syncBuffer is an io.Writer that tests can read while the command writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDemo runs `wastatus run --demo` with args, on free ports and a
// fresh data dir, until the demo finished. stop ends the run and checks it
// returned nil.
func startDemo(t *testing.T, args ...string) (out *syncBuffer, dir string, ctx context.Context, stop func()) {
	t.Helper()
	t.Setenv(envAppSecret, "")
	t.Setenv(envVerifyToken, "")
	dir = t.TempDir()
	out = &syncBuffer{}
	var errOut syncBuffer
	cmd := newRootCmd()
	cmd.SetArgs(append([]string{"run", "--demo", "--data-dir", dir,
		"--embedded-kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--partitions", "3"}, args...))
	cmd.SetOut(out)
	cmd.SetErr(&errOut)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "no mismatch") {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
		case <-deadline:
			t.Fatalf("demo did not finish\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out, dir, ctx, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
}

// TestRunDemo runs the README's first command in-process: everything on an
// embedded broker, and the reference article's test against it.
func TestRunDemo(t *testing.T) {
	out, dir, ctx, stop := startDemo(t)

	// The timeline of the demo's message names the article's anomaly.
	s := out.String()
	base := regexp.MustCompile(`query API +(http://[0-9.:]+)/`).FindStringSubmatch(s)
	wamid := regexp.MustCompile(`wamid\.DEMO[0-9a-f]+`).FindString(s)
	if base == nil || wamid == "" {
		t.Fatalf("no API address or demo wamid in the output:\n%s", s)
	}
	var tl syncBuffer
	tcmd := newRootCmd()
	tcmd.SetArgs([]string{"timeline", wamid, "--api", base[1]})
	tcmd.SetOut(&tl)
	if err := tcmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("timeline: %v", err)
	}
	for _, want := range []string{"out-of-order", "delivered (t=", "arrived after read", "advanced", "filled"} {
		if !strings.Contains(tl.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl.String())
		}
	}

	// The metrics say what happened.
	metrics, err := get(ctx, http.DefaultClient, base[1]+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`wastatus_processor_events_by_status_total{region="local",status="read"} 1`,
		`wastatus_processor_events_total{outcome="advanced"} 1`,
		`wastatus_processor_events_total{outcome="filled"} 1`,
		`wastatus_processor_end_to_end_seconds_count 2`,
		`wastatus_edge_requests_total{result="accepted"} 2`,
		`wastatus_edge_request_seconds_count`,
		`wastatus_processor_transactions_total{result="committed"}`,
		`wastatus_processor_missed_revokes_total 0`,
		`wastatus_processor_transaction_ends_cancelled_total 0`,
		`wastatus_store_disk_bytes`,
		`wastatus_store_disk_free_bytes`,
		`wastatus_store_recent_hits_total`,
		`wastatus_store_known_false_positives_total`,
		`wastatus_kafka_`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stop()
	for _, want := range []string{`"status": "read"`, `"delivered_at": `, "DEMO SECRETS", "posted read", "posted delivered"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// The generated secrets are kept for the next run and for `post`.
	d, err := readDemoSecrets(dir + "/" + demoSecretFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, d.appSecret) {
		t.Errorf("printed secret differs from the kept one")
	}
}

func TestEnvSetsFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default", "", nil, "127.0.0.1:8080"},
		{"env", "127.0.0.1:9999", nil, "127.0.0.1:9999"},
		{"flag wins", "127.0.0.1:9999", []string{"--http-addr", "127.0.0.1:7777"}, "127.0.0.1:7777"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("WASTATUS_HTTP_ADDR", tc.env)
			}
			root := newRootCmd()
			run, _, err := root.Find([]string{"run"})
			if err != nil {
				t.Fatal(err)
			}
			if err := run.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := applyEnv(run.Flags()); err != nil {
				t.Fatal(err)
			}
			if got, _ := run.Flags().GetString("http-addr"); got != tc.want {
				t.Fatalf("http-addr = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEnvBadValue(t *testing.T) {
	t.Setenv("WASTATUS_PARTITIONS", "twelve")
	root := newRootCmd()
	run, _, _ := root.Find([]string{"run"})
	if err := applyEnv(run.Flags()); err == nil || !strings.Contains(err.Error(), "WASTATUS_PARTITIONS") {
		t.Fatalf("applyEnv = %v, want an error naming WASTATUS_PARTITIONS", err)
	}
}

func TestSecretsFromEnvOrFile(t *testing.T) {
	t.Setenv(envAppSecret, "from-env")
	t.Setenv(envVerifyToken, "tok")
	s, err := (&secretFlags{}).load("")
	if err != nil || string(s.appSecret) != "from-env" || s.verifyToken != "tok" || s.generated {
		t.Fatalf("env: %+v, %v", s, err)
	}
	t.Setenv(envAppSecret, "")
	if _, err := (&secretFlags{}).load(""); err == nil {
		t.Fatal("no secret and no demo dir: want an error")
	}
}

// TestRunWithSchemaRegistry runs the demo with a schema registry (franz-go's
// in-process fake: no registry server runs here): the schemas are registered
// under the topics' value subjects and the pipeline still reconciles.
func TestRunWithSchemaRegistry(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	_, _, _, stop := startDemo(t, "--schema-registry", reg.URL())
	stop()
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := cl.Subjects(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"whatsapp.status.events-value", "whatsapp.status.current-value"} {
		if !slices.Contains(subjects, want) {
			t.Errorf("registry subjects %v lack %s", subjects, want)
		}
	}
}
