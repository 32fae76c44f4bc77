package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/processor"
)

// PassthroughConfig configures the baseline: a raw franz-go exactly-once
// consume-transform-produce loop with no state.
type PassthroughConfig struct {
	Brokers       []string
	Group         string
	In, Out       string
	TxnMaxRecords int
	TxnMaxWait    time.Duration
	ClientOpts    []kgo.Opt
	Logger        *slog.Logger
}

// RunPassthrough copies every record of In to the same partition of Out
// inside Kafka transactions that also commit the consumed offsets, exactly
// as the processor's loop does minus the fold: a GroupTransactSession,
// read_committed, the same transaction sizing (TxnMaxRecords per poll, and
// further polls for TxnMaxWait), no linger, a flush before each commit. It
// is the ceiling the processor is compared with. It returns nil when ctx
// ends.
func RunPassthrough(ctx context.Context, cfg PassthroughConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.In),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The processor's fetch sizes: under a backlog a transaction is
		// about one fetch, so the same sizes give the same transactions.
		kgo.FetchMaxBytes(processor.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(processor.FetchMaxPartitionBytes),
		kgo.BlockRebalanceOnPoll(),
		kgo.TransactionalID(cfg.Group + "-" + randomID()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	}, cfg.ClientOpts...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("bench: passthrough client: %w", err)
	}
	defer func() {
		// A poll blocks rebalances until allowed, and leaving the group
		// on close is one.
		sess.Client().AllowRebalance()
		sess.Close()
	}()
	for {
		recs := pollTxn(ctx, sess, cfg.TxnMaxRecords, cfg.TxnMaxWait)
		if ctx.Err() != nil {
			return nil
		}
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("bench: begin: %w", err)
		}
		var produceErr atomic.Pointer[error]
		for _, r := range recs {
			sess.Produce(ctx, &kgo.Record{Topic: cfg.Out, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers},
				func(_ *kgo.Record, err error) {
					if err != nil {
						produceErr.CompareAndSwap(nil, &err)
					}
				})
		}
		// Flush before ending, as the processor does, so the commit does
		// not wait on a linger; End then commits outputs and offsets.
		if err := sess.Client().Flush(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("bench: flush: %w", err)
		}
		perr := produceErr.Load()
		committed, err := sess.End(ctx, kgo.TransactionEndTry(perr == nil))
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("bench: end transaction: %w", err)
		case perr != nil:
			return fmt.Errorf("bench: produce: %w", *perr)
		case !committed:
			cfg.Logger.Warn("transaction aborted by a rebalance; its records are read again")
		}
	}
}

// pollTxn returns one transaction's records: a poll of up to maxRecords,
// then, with maxWait, more polls until maxRecords or maxWait.
func pollTxn(ctx context.Context, sess *kgo.GroupTransactSession, maxRecords int, maxWait time.Duration) []*kgo.Record {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	fs := sess.PollRecords(pctx, maxRecords)
	cancel()
	if fs.IsClientClosed() {
		return nil
	}
	recs := fs.Records()
	if maxWait > 0 && len(recs) > 0 {
		deadline := time.Now().Add(maxWait)
		for len(recs) < maxRecords && time.Now().Before(deadline) && ctx.Err() == nil {
			pctx, cancel := context.WithDeadline(ctx, deadline)
			recs = append(recs, sess.PollRecords(pctx, maxRecords-len(recs)).Records()...)
			cancel()
		}
	}
	return recs
}

// EdgePassthroughConfig configures the edge's baseline.
type EdgePassthroughConfig struct {
	Brokers    []string
	Topic      string
	Addr       string // listen address
	ClientOpts []kgo.Opt
	Logger     *slog.Logger
}

// SeqHeader carries a POST's sequence number in the bench; the edge
// baseline makes it the record key, so the pipeline baseline can tell
// which POST a record came from without parsing JSON.
const SeqHeader = "X-Bench-Seq"

// RunEdgePassthrough serves POST /webhook by producing the body as one
// record (key: the SeqHeader value) with the edge's producer settings and
// answering 200 once Kafka acknowledged it: HTTP and Kafka with no
// signature check, parsing or Avro. GET /metrics answers 200 for readiness.
func RunEdgePassthrough(ctx context.Context, cfg EdgePassthroughConfig, producerOpts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(cfg.Topic)}, producerOpts...), cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("bench: edge passthrough client: %w", err)
	}
	defer cl.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec := &kgo.Record{Value: body}
		if seq := r.Header.Get(SeqHeader); seq != "" {
			rec.Key = []byte(seq)
		}
		if err := cl.ProduceSync(r.Context(), rec).FirstErr(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"accepted":1,"rejected":0}`)
	})
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("bench: edge passthrough listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bench: edge passthrough: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("bench: edge passthrough shutdown: %w", err)
	}
	return nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
