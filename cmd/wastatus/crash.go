package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/wastatus/wastatus/processor"
)

// envCrash names crash points for crash tests: a comma-separated list of
// point:probability, with points after-txn-commit (a transaction committed,
// its store batches not yet) and before-txn-end (outputs produced, the
// transaction not yet ended). At each such point the process SIGKILLs itself
// with that probability. Never set it in production.
const envCrash = "WASTATUS_CRASH_POINTS"

func crashKnobs() (processor.TestingKnobs, error) {
	var k processor.TestingKnobs
	spec := os.Getenv(envCrash)
	if spec == "" {
		return k, nil
	}
	for _, item := range strings.Split(spec, ",") {
		point, prob, ok := strings.Cut(item, ":")
		p, err := strconv.ParseFloat(prob, 64)
		if !ok || err != nil || p < 0 || p > 1 {
			return k, fmt.Errorf("%s: %q is not point:probability", envCrash, item)
		}
		kill := func() {
			if rand.Float64() < p {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
		switch point {
		case "after-txn-commit":
			k.AfterTxnCommit = kill
		case "before-txn-end":
			k.BeforeTxnEnd = kill
		default:
			return k, fmt.Errorf("%s: unknown crash point %q", envCrash, point)
		}
	}
	return k, nil
}
