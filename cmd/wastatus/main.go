// Command wastatus receives WhatsApp status webhooks, folds them by the status
// lattice on Kafka, and serves the reconciled state. See the README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wastatus:", err)
		os.Exit(1)
	}
}
