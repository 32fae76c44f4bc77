package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/internal/kafkatest"
)

// TestCloseDropsTheRun checks that Close, on a broker the bench did not
// start, deletes the run's topics and groups and nothing else, and that
// KeepWorkDir keeps them.
func TestCloseDropsTheRun(t *testing.T) {
	c := kafkatest.New(t)
	other := kafkatest.Name(t, "other")
	withAdmin(t, c.Brokers, func(adm *kadm.Client) error {
		_, err := adm.CreateTopic(t.Context(), 1, -1, nil, other)
		return err
	})
	for _, keep := range []bool{false, true} {
		b, err := New(Config{Brokers: c.Brokers, Partitions: 2, KeepWorkDir: keep, WorkDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.createTopics(t.Context(), b.topic("events"), b.topic("passthrough")); err != nil {
			t.Fatal(err)
		}
		group := b.topic("processor")
		// The group exists once a commit to it succeeds. A coordinator
		// may not know a topic created a moment ago, and says so per
		// partition, not as the request's error: a CI run on a real
		// broker went on without the group.
		offsets := kadm.Offsets{}
		offsets.Add(kadm.Offset{Topic: b.topic("events"), Partition: 0, At: 0, LeaderEpoch: -1})
		kafkatest.Eventually(t, 10*time.Second, func() error {
			var err error
			withAdmin(t, c.Brokers, func(adm *kadm.Client) error {
				resp, cerr := adm.CommitOffsets(t.Context(), group, offsets)
				if cerr == nil {
					cerr = resp.Error()
				}
				err = cerr
				return nil
			})
			return err
		})
		if err := b.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}

		want := []string{b.topic("events"), b.topic("passthrough"), group}
		if !keep {
			want = nil
		}
		// A deletion reaches a broker's metadata shortly after it is
		// acknowledged: poll, each time with a new client, whose metadata
		// is not cached.
		kafkatest.Eventually(t, 10*time.Second, func() error {
			var left []string
			var hasOther bool
			withAdmin(t, c.Brokers, func(adm *kadm.Client) error {
				topics, err := adm.ListTopics(t.Context())
				if err != nil {
					return err
				}
				groups, err := adm.ListGroups(t.Context())
				if err != nil {
					return err
				}
				hasOther = topics.Has(other)
				for _, name := range append(topics.Names(), groups.Groups()...) {
					if strings.HasPrefix(name, b.topic("")) {
						left = append(left, name)
					}
				}
				return nil
			})
			slices.Sort(left)
			slices.Sort(want)
			switch {
			case !hasOther:
				return fmt.Errorf("keep=%v: Close deleted %s, which is not the run's", keep, other)
			case !slices.Equal(left, want):
				return fmt.Errorf("keep=%v: the run's topics and groups left are %v, want %v", keep, left, want)
			}
			return nil
		})
	}
}

// withAdmin runs fn with an admin client of its own.
func withAdmin(t *testing.T, brokers []string, fn func(*kadm.Client) error) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := fn(kadm.NewClient(cl)); err != nil {
		t.Fatal(err)
	}
}
