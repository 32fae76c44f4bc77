package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wastatus/wastatus/processor"
)

func newTimelineCmd() *cobra.Command {
	var (
		api     string
		asJSON  bool
		timeout time.Duration
		auth    apiFlags
	)
	cmd := &cobra.Command{
		Use:   "timeline WAMID",
		Short: "Show every event folded for a message, in arrival order, and the anomalies they show",
		Long: `Show a message's timeline from the processor that owns it: every event folded,
in arrival order, with its region, payload time, receive time and what it did
(advanced, filled an earlier timestamp or attribute, stale: older than the
status, duplicate), and the anomalies the reference article's troubleshooting
steps hunt for: an older status after a newer one, read with no delivered,
failed after delivered, statuses for a message never seen sent, late retries.

When the API requires a bearer token, it is read from --api-token-file, else
from WASTATUS_API_TOKEN, as the processor reads its own.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			token, err := auth.token()
			if err != nil {
				return err
			}
			u := api + "/v1/messages/" + url.PathEscape(args[0]) + "/timeline"
			client := &http.Client{Timeout: timeout}
			body, err := get(cmd.Context(), client, u, token)
			if err != nil {
				if len(body) > 0 {
					return fmt.Errorf("%w: %s", err, body)
				}
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var t processor.Timeline
			if err := json.Unmarshal(body, &t); err != nil {
				return fmt.Errorf("timeline: %w", err)
			}
			return printTimeline(cmd.OutOrStdout(), &t)
		},
	}
	cmd.Flags().StringVar(&api, "api", "http://127.0.0.1:8080", "base URL of a processor's query API (the one owning the message)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "request timeout")
	cmd.Flags().StringVar(&auth.tokenFile, "api-token-file", "", "file holding the bearer token the query API requires (else "+envAPIToken+")")
	return cmd
}

func printTimeline(w io.Writer, t *processor.Timeline) error {
	fmt.Fprintf(w, "%s\nstatus %s, partition %d, %d events\n\n", t.WAMID, t.Status, t.Partition, len(t.Events))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OFFSET\tSTATUS\tPARTICIPANT\tPAYLOAD TIME (UTC)\tRECEIVED\tREGION\tEFFECT")
	for _, e := range t.Events {
		received := "-"
		if e.ReceivedAt > 0 {
			received = "+" + (time.Duration(e.ReceivedAt-e.Timestamp*1000) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Offset, e.Status, dash(e.Participant),
			time.Unix(e.Timestamp, 0).UTC().Format("2006-01-02 15:04:05"), received, dash(e.Region), e.Effect)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(t.Anomalies) == 0 {
		fmt.Fprintln(w, "\nno anomalies")
		return nil
	}
	fmt.Fprintln(w, "\nanomalies:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, a := range t.Anomalies {
		at := "message"
		if a.Offset >= 0 {
			at = fmt.Sprintf("offset %d", a.Offset)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.Kind, at, a.Detail)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
