package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
		Long: `A hanging transaction is open on a partition while no coordinator will ever
write its marker: Kafka 4.4 leaves them when a single-node broker restarts
while transactions commit (docs/RELIABILITY.md), and older clients left them
too. On a partition of the current topic it holds back the last stable offset,
so read_committed readers and restores stop there; in the group's partition of
__consumer_offsets it holds the group's offsets, and the processors wait for
ever (UNSTABLE_OFFSET_COMMIT) to start the partitions whose offsets it holds.
See docs/OPERATIONS.md, "Stalled on a hanging transaction".

"hanging" lists those of the current and dead-letter topics and of the group's
partition of __consumer_offsets (there, those of the processors' transactional
ids, and those whose producer no coordinator knows any more, marked
unattributed), and exits 1 when it finds any; "abort" lists and then aborts
them. A transaction is hanging when its coordinator does not list its
partition in a transaction still to complete; and so that a transaction too
young to judge is left alone, only once it has gone --older-than without a
record: by default the brokers' transaction.max.timeout.ms (15 minutes unless
set), past which a coordinator aborts what it knows of. The processors warn
sooner (after twice their transaction timeout): wait, or pass an --older-than
of at least twice their --transaction-timeout, since they are the only
transactional writers of these topics and of the group's offsets.

Both need what Kafka's kafka-transactions.sh needs: READ on the topics and on
__consumer_offsets (to describe their producers), DESCRIBE on the
transactional ids, DESCRIBE_CONFIGS on the cluster, and, to abort,
CLUSTER_ACTION.`,
	}
	fs := cmd.PersistentFlags()
	f.k.registerForAdmin(fs)
	fs.StringVar(&f.group, "group", processor.DefaultGroup, "consumer group of the processors")
	fs.StringVar(&f.prefix, "transactional-id-prefix", "", "the processors' transactional ids start with this (default: the group and a dot)")
	fs.DurationVar(&f.olderThan, "older-than", 0, "judge a transaction once it has gone this long without a record (0: the brokers' transaction.max.timeout.ms)")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object per transaction and line")
	cmd.AddCommand(newTxnHangingCmd(g, f), newTxnAbortCmd(g, f))
	return cmd
}

func newTxnHangingCmd(g *globals, f *txnFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "hanging",
		Short: "List hanging transactions on the processors' topics and group; exit 1 when there are any",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTxn(cmd, g, f, listOnly, false)
		},
	}
}

func newTxnAbortCmd(g *globals, f *txnFlags) *cobra.Command {
	var yes, unattributed bool
	cmd := &cobra.Command{
		Use:   "abort",
		Short: "Abort the hanging transactions that txn hanging lists",
		Long: `Abort lists the hanging transactions as "txn hanging" does and, with --yes,
writes each one's abort marker, after checking that its partition still holds
it open as found. Without --yes it only says what it would abort, and exits 1
when there is any. An unattributed transaction on __consumer_offsets may be
another group's: it is aborted only with --unattributed.

What the processors do then (docs/OPERATIONS.md): an aborted offsets commit
sends a partition back to the group's previous offset, and the processor that
takes it folds the events again, restoring the partition from the current
topic first if its store is ahead, and emits their states anew. The records
of an aborted transaction on the current or dead-letter topic are dropped for
every reader; when the same transaction's offsets commit is not aborted with
it (abort warns), what they carried is missing from the topic until the
partition is folded again: OPERATIONS.md says how.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return runTxn(cmd, g, f, dryRun, unattributed)
			}
			return runTxn(cmd, g, f, abortThem, unattributed)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "abort them (without it: only list what would be aborted)")
	cmd.Flags().BoolVar(&unattributed, "unattributed", false, "abort unattributed transactions on __consumer_offsets too")
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
// aborts them (the unattributed ones only with unattributed). It fails when
// hanging transactions are left: found and not aborted, or an abort failed.
func runTxn(cmd *cobra.Command, g *globals, f *txnFlags, mode txnMode, unattributed bool) error {
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
	if len(hanging) == 0 {
		return nil
	}
	var abort, keep []processor.HangingTxn
	for _, h := range hanging {
		if h.Unattributed && !unattributed {
			keep = append(keep, h)
		} else {
			abort = append(abort, h)
		}
	}
	switch mode {
	case listOnly:
		return fmt.Errorf("%d hanging transactions", len(hanging))
	case dryRun:
		return fmt.Errorf("would abort %d of %d hanging transactions; run again with --yes to abort them", len(abort), len(hanging))
	}
	errs := []error{abortHanging(ctx, adm, abort, s.log, out, f.asJSON)}
	if len(keep) > 0 {
		errs = append(errs, fmt.Errorf("%d unattributed hanging transactions left; --unattributed to abort them too", len(keep)))
	}
	return errors.Join(errs...)
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
		id := orDash(h.TransactionalID)
		if h.Unattributed {
			id = "(unattributed)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", h.Topic, h.Partition, h.StartOffset, h.ProducerID, h.ProducerEpoch,
			h.LastWrite.UTC().Format(time.RFC3339), id, orDash(h.CoordinatorState))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print: %w", err)
	}
	return nil
}

// abortHanging aborts each of hanging and says what it did; a transaction
// that something else ended meanwhile is not an error. It warns of each
// aborted transaction on an output topic whose producer's offsets commit
// was not aborted with it: what it carried is then missing from the topic.
func abortHanging(ctx context.Context, adm *kadm.Client, hanging []processor.HangingTxn, log *slog.Logger, out io.Writer, asJSON bool) error {
	var errs []error
	aborted := 0
	offsetsAborted := make(map[int64]bool)
	var outputs []processor.HangingTxn
	for _, h := range hanging {
		err := processor.AbortHanging(ctx, adm, h)
		switch {
		case errors.Is(err, processor.ErrNotHanging):
			log.Info("transaction no longer open as found; left alone", "transaction", h.String())
		case err != nil:
			errs = append(errs, err)
		default:
			aborted++
			log.Info("transaction aborted", "transaction", h.String())
			if h.Topic == processor.OffsetsTopic {
				offsetsAborted[h.ProducerID] = true
			} else {
				outputs = append(outputs, h)
			}
		}
	}
	for _, h := range outputs {
		if !offsetsAborted[h.ProducerID] {
			log.Warn("aborted a transaction whose offsets commit was not aborted with it: what it carried is missing from the topic until the events partition is folded again (docs/OPERATIONS.md)",
				"transaction", h.String(), "last_write", h.LastWrite.UTC().Format(time.RFC3339))
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
