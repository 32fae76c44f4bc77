package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wastatus/wastatus/processor"
)

// txnFlags say where to look for hanging transactions.
type txnFlags struct {
	k         kafkaFlags
	group     string
	prefix    string
	olderThan time.Duration
	asJSON    bool
}

func newTxnCmd(g *globals) *cobra.Command {
	f := &txnFlags{}
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "Find and abort hanging transactions that stall the processors",
		Long: `A hanging transaction is open on a partition while its coordinator will never
write its marker: Kafka 4.4 leaves them when a single-node broker restarts
while transactions commit (docs/RELIABILITY.md), and older clients left them
too. On a partition of the current topic it holds back the last stable offset,
so read_committed readers and restores stop there; in the group's partition of
__consumer_offsets it holds the group's offsets, and the processors wait for
ever (UNSTABLE_OFFSET_COMMIT) to start the partitions they are given.

"hanging" lists those of the current and dead-letter topics and of the group's
partition of __consumer_offsets (there, only those of producers whose
transactional id starts with the group's prefix); "abort" lists and then
aborts them. A transaction is only called hanging once it has gone without a
record for longer than any live transaction can last (the brokers'
transaction.max.timeout.ms, 15 minutes by default; --older-than to choose).
Both need the permissions of Kafka's own kafka-transactions.sh: DESCRIBE on
the topics and transactional ids, and CLUSTER_ACTION to write markers.`,
	}
	fs := cmd.PersistentFlags()
	f.k.register(fs)
	fs.StringVar(&f.group, "group", processor.DefaultGroup, "consumer group of the processors")
	fs.StringVar(&f.prefix, "transactional-id-prefix", "", "the processors' transactional ids start with this (default: the group and a dot)")
	fs.DurationVar(&f.olderThan, "older-than", 0, "call a transaction hanging once it has gone this long without a record (0: the brokers' transaction.max.timeout.ms); shorter may abort a live one")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object per transaction and line")
	cmd.AddCommand(newTxnHangingCmd(g, f), newTxnAbortCmd(g, f))
	return cmd
}

func newTxnHangingCmd(g *globals, f *txnFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "hanging",
		Short: "List hanging transactions on the processors' topics and group",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTxn(cmd, g, f, listOnly)
		},
	}
}

func newTxnAbortCmd(g *globals, f *txnFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "abort",
		Short: "Abort the hanging transactions that txn hanging lists",
		Long: `Abort lists the hanging transactions as "txn hanging" does and, with --yes,
writes each one's abort marker, after checking that its partition still holds
it open. Without --yes it only says what it would abort.

What the processors do then (docs/RELIABILITY.md): an aborted offsets commit
sends a partition back to the group's previous offset; the processor that
takes it finds its store ahead of that offset, restores the partition from
the current topic and folds the events again, emitting their states anew. The
records of an aborted transaction on the current topic are dropped for every
reader; when that transaction's offsets commit was not aborted with it, the
states it carried reach the topic again with each message's next change, and
"wastatus rebuild --verify" lists the messages whose latest state the topic
lacks until then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return runTxn(cmd, g, f, dryRun)
			}
			return runTxn(cmd, g, f, abortThem)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "abort them (without it: only list what would be aborted)")
	return cmd
}

// txnMode is what runTxn does with the hanging transactions it finds.
type txnMode uint8

const (
	listOnly  txnMode = iota // txn hanging
	dryRun                   // txn abort without --yes
	abortThem                // txn abort --yes
)

// runTxn lists the hanging transactions in f's scope and, as mode says,
// aborts them; it fails if any abort does.
func runTxn(cmd *cobra.Command, g *globals, f *txnFlags, mode txnMode) error {
	s, err := clusterStack(cmd, g, &f.k, false)
	if err != nil {
		return err
	}
	defer s.close()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.k.brokers...)}, s.clientOpts("txn")...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := cmd.Context()
	prefix := f.prefix
	if prefix == "" {
		prefix = f.group + "."
	}
	scope := processor.HangingScope{Topics: []string{f.k.current, f.k.dlq}, Group: f.group, TxnIDPrefix: prefix, OlderThan: f.olderThan}
	hanging, err := processor.FindHanging(ctx, adm, scope, time.Now())
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if err := printHanging(out, hanging, f.asJSON); err != nil {
		return err
	}
	switch {
	case mode == dryRun && len(hanging) > 0:
		fmt.Fprintf(cmd.ErrOrStderr(), "would abort %d; run again with --yes to abort them\n", len(hanging))
		return nil
	case mode != abortThem:
		return nil
	}
	return abortHanging(ctx, adm, hanging, s.log.Info, out, f.asJSON)
}

// printHanging prints hanging as a table, or as JSON lines.
func printHanging(out io.Writer, hanging []processor.HangingTxn, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		for _, h := range hanging {
			if err := enc.Encode(h); err != nil {
				return fmt.Errorf("print: %w", err)
			}
		}
		return nil
	}
	if len(hanging) == 0 {
		_, err := fmt.Fprintln(out, "no hanging transactions")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTART OFFSET\tPRODUCER\tEPOCH\tLAST WRITE\tTRANSACTIONAL ID\tCOORDINATOR STATE")
	for _, h := range hanging {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", h.Topic, h.Partition, h.StartOffset, h.ProducerID, h.ProducerEpoch,
			h.LastWrite.UTC().Format(time.RFC3339), orDash(h.TransactionalID), orDash(h.CoordinatorState))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print: %w", err)
	}
	return nil
}

// abortHanging aborts each of hanging and says what it did; a transaction
// that something else ended meanwhile is not an error.
func abortHanging(ctx context.Context, adm *kadm.Client, hanging []processor.HangingTxn, logf func(string, ...any), out io.Writer, asJSON bool) error {
	var errs []error
	aborted := 0
	for _, h := range hanging {
		err := processor.AbortHanging(ctx, adm, h)
		switch {
		case errors.Is(err, processor.ErrNotHanging):
			logf("transaction already ended", "transaction", h.String())
		case err != nil:
			errs = append(errs, err)
		default:
			aborted++
			logf("transaction aborted", "transaction", h.String())
		}
	}
	if !asJSON {
		fmt.Fprintf(out, "aborted %d of %d\n", aborted, len(hanging))
	}
	return errors.Join(errs...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
