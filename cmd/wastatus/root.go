package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envPrefix prefixes the environment variable of every flag: --http-addr is
// also WASTATUS_HTTP_ADDR. A flag given on the command line wins.
const envPrefix = "WASTATUS_"

// globals are the flags every subcommand shares.
type globals struct {
	logLevel  string
	logFormat string
	pprof     bool
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "wastatus",
		Short: "End WhatsApp delivery-status mismatches: fold status webhooks on Kafka by a status lattice",
		Long: `wastatus receives WhatsApp Cloud API status webhooks (sent, delivered, read,
played, failed), writes them to Kafka keyed by message id, and folds them into
one state per message by a lattice, so the result is the same whatever order
and however many duplicates they arrive in.

Every flag can also be set with an environment variable: WASTATUS_ and the
flag's name in upper case with - as _ (--http-addr is WASTATUS_HTTP_ADDR).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd.Flags())
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.PersistentFlags().BoolVar(&g.pprof, "pprof", false, "serve Go's profiles under /debug/pprof/ on the HTTP listener (behind the API token, when one is set)")
	root.AddCommand(
		newRunCmd(g),
		newIngestCmd(g),
		newProcessCmd(g),
		newPostCmd(),
		newTimelineCmd(),
		newRebuildCmd(g),
		newDLQCmd(g),
		newTxnCmd(g),
		newBenchCmd(g),
	)
	return root
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, when that is set.
func applyEnv(fs *pflag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// minLevel drops records below min: the Kafka clients log at info what an
// operator needs only when debugging, so they get warn unless --log-level
// is debug.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// clientLogger is the logger handed to franz-go clients.
func clientLogger(l *slog.Logger) *slog.Logger {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return l
	}
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", g.logFormat)
	}
}
