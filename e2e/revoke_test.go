package e2e

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wastatus/wastatus/internal/kafkatest"
	"github.com/wastatus/wastatus/processor"
)

// TestSwallowedRevoke: idle processors A, B, C join one group (classic
// protocol) one after another, so A gives up partitions twice with no
// transaction in between. franz-go's GroupTransactSession passes on no second
// revoke before a transaction ends; without the processor's reset of an idle
// session, A went on claiming a partition C owned, and panicked when it came
// back. Every partition must have exactly one owner at every step.
func TestSwallowedRevoke(t *testing.T) {
	e := newEnv(t)
	a := e.startProcessor(dataDir(t, "a"))
	keys := map[int32]string{} // a wamid of every partition
	for i := 0; len(keys) < 6; i++ {
		k := fmt.Sprintf("wamid.%d", i)
		p, _ := a.proc.Partition(k)
		keys[p] = k
	}
	procs := map[string]*runningProcessor{"A": a}
	owners := func() map[int32][]string {
		out := map[int32][]string{}
		for part, key := range keys {
			for name, rp := range procs {
				if _, _, err := rp.proc.Get(key); !errors.Is(err, processor.ErrNotOwner) {
					out[part] = append(out[part], name)
				}
			}
		}
		return out
	}
	settle := func(what string) {
		t.Helper()
		kafkatest.Eventually(t, 30*time.Second, func() error {
			o, n := owners(), 0
			for _, v := range o {
				n += len(v)
			}
			if len(o) == 6 && n == 6 {
				return nil
			}
			return fmt.Errorf("%s: partitions claimed by %v", what, o)
		})
	}
	settle("A alone")
	procs["B"] = e.startProcessor(dataDir(t, "b"))
	settle("A and B")
	procs["C"] = e.startProcessor(dataDir(t, "c"))
	settle("A, B and C")
	procs["C"].stop(t)
	delete(procs, "C")
	settle("C stopped")
}
