package chaos_test

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/wastatus/wastatus/internal/chaos"
	"github.com/wastatus/wastatus/internal/kafkatest"
)

// TestChaos runs a short chaos run, the same code path as
// `go run ./tools/chaos`: its own real broker (bounced once), three
// processors SIGKILLed every couple of seconds, two edges, and every check.
// It needs a real broker of its own, so it runs only with
// WASTATUS_TEST_OWN_BROKER=1 (and Java 17 and Maven); WASTATUS_CHAOS_SEED
// replays a run.
func TestChaos(t *testing.T) {
	if os.Getenv(kafkatest.EnvOwnBroker) != "1" {
		t.Skipf("starts a real Kafka broker, 5 wastatus processes and SIGKILLs them for about a minute: set %s=1 (Java 17 and Maven), or run go run ./tools/chaos", kafkatest.EnvOwnBroker)
	}
	t.Setenv(chaos.EnvFastGroupRecovery, "1")
	cfg := chaos.Config{
		Duration:  30 * time.Second,
		KillEvery: 3 * time.Second,
		Log:       slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	if s := os.Getenv("WASTATUS_CHAOS_SEED"); s != "" {
		var err error
		if cfg.Seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := chaos.Run(t.Context(), cfg)
	var out bytes.Buffer
	sum.Write(&out)
	t.Logf("summary (replay with WASTATUS_CHAOS_SEED=%d):\n%s", sum.Seed, out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() {
		t.Errorf("%d kinds of violation; see the summary", len(sum.Violations))
	}
	if sum.Kills == 0 || sum.Gen.AckedEvents == 0 || sum.Bounce == "" {
		t.Errorf("the run did too little to prove anything: %d kills, %d events acknowledged, bounce %q", sum.Kills, sum.Gen.AckedEvents, sum.Bounce)
	}
}
