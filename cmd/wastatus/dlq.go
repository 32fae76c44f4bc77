package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/processor"
	"github.com/wastatus/wastatus/schemas"
)

// Header keys of the dead-letter records the processor writes (the edge's
// are edge.HeaderError, edge.HeaderSource, edge.HeaderRegion and
// edge.HeaderTruncated).
const (
	headerReason          = "reason"
	headerSourceTopic     = "source.topic"
	headerSourcePartition = "source.partition"
	headerSourceOffset    = "source.offset"
	sourceProcessor       = "processor"

	// headerReplayedFrom is added to every replayed event: the dead letter
	// it came from, as topic/partition/offset.
	headerReplayedFrom = "replayed-from"
)

func newDLQCmd(g *globals) *cobra.Command {
	var k kafkaFlags
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List the dead-letter topic, or replay its records into the events topic after a fix",
		Long: `The dead-letter topic holds what could not be processed, with headers saying
why and where from: the edge's (source=edge) are status objects of a webhook
that could not become events, as their raw JSON, with the error and the region;
the processor's (source=processor) are events-topic records it could not fold,
as they were, with the reason (undecodable, unknown-status, too-large,
key-mismatch, invalid-event), the error and the source topic, partition and
offset.`,
	}
	k.register(cmd.PersistentFlags())
	cmd.AddCommand(newDLQListCmd(g, &k), newDLQReplayCmd(g, &k))
	return cmd
}

func newDLQListCmd(g *globals, k *kafkaFlags) *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, from the start of the topic to its end",
		Long: `List the dead-letter topic's records, partition by partition from the start of
each to its end (read_committed): partition, offset, key, the headers source
(with source.topic, source.partition and source.offset for the processor's),
reason, error and region, the value's size and a short preview of it: a
StatusEvent's wamid, status and time, the start of an edge dead letter's
JSON, or the first bytes in hex. --json prints one JSON object per line, with
every header.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := clusterStack(cmd, g, k, false)
			if err != nil {
				return err
			}
			defer s.close()
			return listDLQ(cmd.Context(), dlqConfig(k, s, "dlq-list"), s.codec, limit, asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many records (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per record and line")
	return cmd
}

func dlqConfig(k *kafkaFlags, s *stack, name string) processor.Config {
	return processor.Config{
		Brokers:      k.brokers,
		EventsTopic:  k.events,
		CurrentTopic: k.current,
		DLQTopic:     k.dlq,
		ClientOpts:   s.clientOpts(name),
		Logger:       s.log.With("component", name),
	}
}

// deadLetter is the listed form of a dead-letter record.
type deadLetter struct {
	Partition       int32          `json:"partition"`
	Offset          int64          `json:"offset"`
	Timestamp       time.Time      `json:"timestamp"`
	Key             string         `json:"key"`
	Source          string         `json:"source,omitempty"`
	Reason          string         `json:"reason,omitempty"`
	Error           string         `json:"error,omitempty"`
	Region          string         `json:"region,omitempty"`
	SourceTopic     string         `json:"source_topic,omitempty"`
	SourcePartition *int32         `json:"source_partition,omitempty"`
	SourceOffset    *int64         `json:"source_offset,omitempty"`
	Truncated       *int64         `json:"truncated_from_bytes,omitempty"`
	ValueSize       int            `json:"value_size"`
	Preview         string         `json:"preview"`
	Headers         []headerString `json:"headers"`
}

type headerString struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func describeDeadLetter(rec *kgo.Record, codec *schemas.Codec) deadLetter {
	d := deadLetter{
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Timestamp: rec.Timestamp.UTC(),
		Key:       string(rec.Key),
		Source:    header(rec, edge.HeaderSource),
		Reason:    header(rec, headerReason),
		Error:     header(rec, edge.HeaderError),
		Region:    header(rec, edge.HeaderRegion),
		ValueSize: len(rec.Value),
		Preview:   preview(rec.Value, codec),
		Headers:   make([]headerString, len(rec.Headers)),
	}
	d.SourceTopic = header(rec, headerSourceTopic)
	if v, err := strconv.ParseInt(header(rec, headerSourcePartition), 10, 32); err == nil {
		p := int32(v)
		d.SourcePartition = &p
	}
	if v, err := strconv.ParseInt(header(rec, headerSourceOffset), 10, 64); err == nil {
		d.SourceOffset = &v
	}
	if v, err := strconv.ParseInt(header(rec, edge.HeaderTruncated), 10, 64); err == nil {
		d.Truncated = &v
	}
	for i, h := range rec.Headers {
		d.Headers[i] = headerString{Key: h.Key, Value: string(h.Value)}
	}
	return d
}

// header returns the value of rec's first header named key, or "".
func header(rec *kgo.Record, key string) string {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// previewLen is how many characters of a value a preview shows.
const previewLen = 72

// preview describes a value in a line: a StatusEvent's key fields, the
// start of a text (an edge dead letter's JSON), or the first bytes in hex.
func preview(v []byte, codec *schemas.Codec) string {
	if len(v) == 0 {
		return "(empty)"
	}
	if ev, err := codec.DecodeStatusEvent(v); err == nil {
		return fmt.Sprintf("StatusEvent wamid=%s status=%q timestamp=%d region=%s", ev.WAMID, ev.Status, ev.Timestamp, ev.Region)
	}
	if utf8.Valid(v) {
		s := strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return ' '
			}
			if !unicode.IsPrint(r) {
				return '?'
			}
			return r
		}, string(v))
		return truncate(s, previewLen)
	}
	n := min(len(v), 24)
	s := "0x" + hex.EncodeToString(v[:n])
	if n < len(v) {
		s += "…"
	}
	return s
}

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func listDLQ(ctx context.Context, cfg processor.Config, codec *schemas.Codec, limit int, asJSON bool, out io.Writer) error {
	errLimit := errors.New("limit reached")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	enc := json.NewEncoder(out)
	if !asJSON {
		fmt.Fprintln(tw, "PARTITION\tOFFSET\tKEY\tSOURCE\tREASON\tREGION\tSIZE\tERROR\tVALUE")
	}
	listed := 0
	_, err := processor.ReadTopic(ctx, cfg, cfg.DLQTopic, func(rec *kgo.Record) error {
		if limit > 0 && listed >= limit {
			return errLimit
		}
		listed++
		d := describeDeadLetter(rec, codec)
		if asJSON {
			return enc.Encode(d)
		}
		size := strconv.Itoa(d.ValueSize)
		if d.Truncated != nil {
			size += " (cut from " + strconv.FormatInt(*d.Truncated, 10) + ")"
		}
		source := d.Source
		if d.SourceTopic != "" && d.SourcePartition != nil && d.SourceOffset != nil {
			source += fmt.Sprintf(" %s[%d]@%d", d.SourceTopic, *d.SourcePartition, *d.SourceOffset)
		}
		_, err := fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Partition, d.Offset, dash(d.Key), dash(source),
			dash(d.Reason), dash(d.Region), size, dash(truncate(d.Error, 60)), d.Preview)
		return err
	})
	if err != nil && !errors.Is(err, errLimit) {
		return fmt.Errorf("dlq list: %w", err)
	}
	if !asJSON {
		if err := tw.Flush(); err != nil {
			return err
		}
		switch {
		case errors.Is(err, errLimit):
			fmt.Fprintf(out, "\nfirst %d dead letters of %s shown; --limit 0 lists all\n", listed, cfg.DLQTopic)
		default:
			fmt.Fprintf(out, "\n%d dead letters in %s\n", listed, cfg.DLQTopic)
		}
	}
	return nil
}

func newDLQReplayCmd(g *globals, k *kafkaFlags) *cobra.Command {
	var f replayFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Send dead letters back into the events topic, after a fix",
		Long: `Send the dead-letter topic's records, from its start to its end as of now,
back into the events topic, once whatever rejected them has been fixed (a
newer wastatus that knows a status value, a larger size limit, a sender that
was repaired):

  processor dead letters go back as they were: the same key, the same Avro
    StatusEvent value, the original headers (region);
  edge dead letters hold a raw status object: it is wrapped in the webhook
    envelope it came in, rebuilt from the record's headers (phone_number_id,
    display_phone_number, waba_id), and parsed as the edge parses it, with
    the record's region header and its received_at header as the receive
    time, so that the event is the one the edge would have written; each
    event is written keyed by its wamid with a region header. (Dead letters
    of edges older than those headers replay with the envelope ids empty and
    the record's timestamp as the receive time.)

Each record is first checked by this binary's rules, the edge's and the
processor's: one that would be rejected again is not sent but reported as
still rejected, with why. Every replayed event carries a replayed-from header
naming its dead letter. Nothing is removed from the dead-letter topic.

Replaying is safe to repeat: the fold is idempotent, so an event replayed
twice (or one that was also delivered by Meta's own retries) changes nothing
the second time. --dry-run checks and counts without writing.

Select records with --reason (the processor's reason header, repeatable or
comma separated) and --source (edge or processor). A summary is printed; the
command fails only when Kafka did not take the replayed events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.source != "" && f.source != edge.SourceEdge && f.source != sourceProcessor {
				return fmt.Errorf("--source: want %s or %s, got %q", edge.SourceEdge, sourceProcessor, f.source)
			}
			s, err := clusterStack(cmd, g, k, false)
			if err != nil {
				return err
			}
			defer s.close()
			return replayDLQ(cmd.Context(), dlqConfig(k, s, "dlq-replay"), s.codec, &f, s.log, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringSliceVar(&f.reasons, "reason", nil, "replay only processor dead letters with this reason (undecodable, unknown-status, too-large, key-mismatch, invalid-event)")
	cmd.Flags().StringVar(&f.source, "source", "", "replay only dead letters from this source: edge or processor")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "check and count what would be replayed, write nothing")
	return cmd
}

type replayFlags struct {
	reasons []string
	source  string
	dryRun  bool
}

// replaySummary counts what a replay did.
type replaySummary struct {
	read, selected          int
	fromProcessor, fromEdge int // events replayed (or, dry, to replay) by source
	rejected                int // dead letters (or statuses in them) still rejected
}

// replayer turns dead letters back into events.
type replayer struct {
	cfg   processor.Config
	codec *schemas.Codec
}

// rejection is a dead letter, or a status in it, that would be rejected
// again.
type rejection struct {
	wamid  string
	reason string
	err    error
}

// events returns the events-topic records that rec replays as, and the
// parts of it that would be rejected again.
func (r *replayer) events(rec *kgo.Record) ([]*kgo.Record, []rejection) {
	from := fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	switch src := header(rec, edge.HeaderSource); src {
	case sourceProcessor:
		if _, reason, err := processor.Admit(r.cfg, r.codec, rec.Key, rec.Value); err != nil {
			return nil, []rejection{{string(rec.Key), reason, err}}
		}
		headers := []kgo.RecordHeader{}
		for _, h := range rec.Headers {
			switch h.Key {
			case headerReason, edge.HeaderError, edge.HeaderSource, headerSourceTopic, headerSourcePartition, headerSourceOffset, headerReplayedFrom:
			default:
				headers = append(headers, h)
			}
		}
		headers = append(headers, kgo.RecordHeader{Key: headerReplayedFrom, Value: []byte(from)})
		return []*kgo.Record{{Topic: r.cfg.EventsTopic, Key: rec.Key, Value: rec.Value, Headers: headers}}, nil
	case edge.SourceEdge:
		return r.edgeEvents(rec, from)
	default:
		return nil, []rejection{{string(rec.Key), "unknown-source", fmt.Errorf("source header %q is neither %s nor %s", src, edge.SourceEdge, sourceProcessor)}}
	}
}

// edgeEvents parses an edge dead letter's raw status object as the edge
// would, in the envelope it came in and with the time it was received.
func (r *replayer) edgeEvents(rec *kgo.Record, from string) ([]*kgo.Record, []rejection) {
	key := string(rec.Key)
	if n := header(rec, edge.HeaderTruncated); n != "" {
		return nil, []rejection{{key, "truncated", fmt.Errorf("the edge kept %d of its %s bytes", len(rec.Value), n)}}
	}
	// One JSON value, so that the envelope holds exactly one status.
	if !json.Valid(rec.Value) {
		return nil, []rejection{{key, "malformed", errors.New("the value is not one JSON value")}}
	}
	body := edgeWebhook(rec)
	region := header(rec, edge.HeaderRegion)
	receivedAt, err := strconv.ParseInt(header(rec, edge.HeaderReceivedAt), 10, 64)
	if err != nil && !rec.Timestamp.IsZero() {
		receivedAt = rec.Timestamp.UnixMilli() // when the edge wrote it: about when it received it
	}
	wh, err := schemas.ParseWebhook(body, region, receivedAt)
	if err != nil {
		return nil, []rejection{{key, "malformed", err}}
	}
	var (
		out []*kgo.Record
		rej []rejection
	)
	for _, rs := range wh.Rejected {
		rej = append(rej, rejection{rs.WAMID, "rejected-by-edge", rs.Err})
	}
	for i := range wh.Events {
		ev := &wh.Events[i]
		val, err := r.codec.AppendStatusEvent(nil, ev)
		if err != nil {
			rej = append(rej, rejection{ev.WAMID, "unencodable", err})
			continue
		}
		if _, reason, err := processor.Admit(r.cfg, r.codec, []byte(ev.WAMID), val); err != nil {
			rej = append(rej, rejection{ev.WAMID, reason, err})
			continue
		}
		out = append(out, &kgo.Record{Topic: r.cfg.EventsTopic, Key: []byte(ev.WAMID), Value: val, Headers: []kgo.RecordHeader{
			{Key: edge.HeaderRegion, Value: []byte(region)},
			{Key: headerReplayedFrom, Value: []byte(from)},
		}})
	}
	return out, rej
}

// edgeWebhook rebuilds the webhook body an edge dead letter's status came
// in: its raw status object in the envelope its headers describe.
func edgeWebhook(rec *kgo.Record) []byte {
	body := make([]byte, 0, len(rec.Value)+256)
	body = append(body, `{"object":"whatsapp_business_account","entry":[{"id":`...)
	body = appendJSONString(body, header(rec, edge.HeaderWABAID))
	body = append(body, `,"changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":`...)
	body = appendJSONString(body, header(rec, edge.HeaderDisplayPhoneNumber))
	body = append(body, `,"phone_number_id":`...)
	body = appendJSONString(body, header(rec, edge.HeaderPhoneNumberID))
	body = append(body, `},"statuses":[`...)
	body = append(body, rec.Value...)
	return append(body, `]}}]}]}`...)
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// selected reports whether rec passes the replay's filters.
func (f *replayFlags) selected(rec *kgo.Record) bool {
	if f.source != "" && header(rec, edge.HeaderSource) != f.source {
		return false
	}
	if len(f.reasons) == 0 {
		return true
	}
	reason := header(rec, headerReason)
	for _, r := range f.reasons {
		if r == reason {
			return true
		}
	}
	return false
}

func replayDLQ(ctx context.Context, cfg processor.Config, codec *schemas.Codec, f *replayFlags, log *slog.Logger, out io.Writer) error {
	var cl *kgo.Client
	if !f.dryRun {
		var err error
		cl, err = kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, edge.ProducerOpts()...), cfg.ClientOpts...)...)
		if err != nil {
			return fmt.Errorf("dlq replay: producer: %w", err)
		}
		defer cl.Close()
	}
	var (
		sum     replaySummary
		mu      sync.Mutex
		failed  error
		promise = func(rec *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				failed = errors.Join(failed, fmt.Errorf("produce %s: %w", rec.Key, err))
				mu.Unlock()
			}
		}
	)
	r := replayer{cfg: cfg, codec: codec}
	_, err := processor.ReadTopic(ctx, cfg, cfg.DLQTopic, func(rec *kgo.Record) error {
		sum.read++
		if !f.selected(rec) {
			return nil
		}
		sum.selected++
		evs, rej := r.events(rec)
		for _, j := range rej {
			sum.rejected++
			fmt.Fprintf(out, "still rejected: %s[%d]@%d %s: %s: %v\n", rec.Topic, rec.Partition, rec.Offset, dash(j.wamid), j.reason, j.err)
		}
		if header(rec, edge.HeaderSource) == edge.SourceEdge {
			sum.fromEdge += len(evs)
		} else {
			sum.fromProcessor += len(evs)
		}
		if cl != nil {
			for _, ev := range evs {
				cl.Produce(ctx, ev, promise)
			}
		}
		return nil
	})
	if cl != nil {
		if ferr := cl.Flush(ctx); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}
	mu.Lock()
	err = errors.Join(err, failed)
	mu.Unlock()
	verb := "replayed"
	if f.dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(out, "%d dead letters read from %s, %d selected; %s %d events to %s (%d from processor dead letters, %d from edge dead letters); %d still rejected\n",
		sum.read, cfg.DLQTopic, sum.selected, verb, sum.fromProcessor+sum.fromEdge, cfg.EventsTopic, sum.fromProcessor, sum.fromEdge, sum.rejected)
	if err != nil {
		return fmt.Errorf("dlq replay: %w", err)
	}
	log.Info("dead letters replayed", "topic", cfg.DLQTopic, "read", sum.read, "selected", sum.selected,
		"replayed", sum.fromProcessor+sum.fromEdge, "still_rejected", sum.rejected, "dry_run", f.dryRun)
	return nil
}
