package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestGoMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	pebble := pebbleMemory(defaultCacheBytes, defaultMemTableBytes)
	tests := []struct {
		name   string
		total  int64
		inGo   bool
		want   int64
		errHas string
	}{
		{name: "defaults, cgo: Pebble is outside the Go heap", total: defaultMemoryLimit, want: defaultMemoryLimit - memoryReserve - pebble},
		{name: "defaults, no cgo: Pebble is Go memory", total: defaultMemoryLimit, inGo: true, want: defaultMemoryLimit - memoryReserve},
		{name: "no limit", total: 0, want: -1},
		{name: "negative is no limit", total: -1, want: -1},
		{name: "too small for the cache", total: 160 * mib, errHas: "--cache-bytes"},
		{name: "just enough", total: memoryReserve + pebble + minGoMemory, want: minGoMemory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := goMemoryLimit(tt.total, pebble, tt.inGo)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("goMemoryLimit(%d) = %d, %v; want an error naming %s", tt.total, got, err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("goMemoryLimit(%d) = %d, %v; want %d", tt.total, got, err, tt.want)
			}
		})
	}
}

// TestDefaultMemoryBudget checks that the defaults leave Go the room the
// bench needed: with less than about twice its live heap (70 MiB at most)
// the collector ran all the time.
func TestDefaultMemoryBudget(t *testing.T) {
	got, err := goMemoryLimit(defaultMemoryLimit, pebbleMemory(defaultCacheBytes, defaultMemTableBytes), false)
	if err != nil {
		t.Fatal(err)
	}
	if got < 120<<20 {
		t.Fatalf("default Go memory limit %d MiB, want at least 120 MiB", got>>20)
	}
}

// TestMemTableBytesFlag checks that process takes its memtables' size into
// its memory budget, and refuses sizes below 1 MiB or of 4 GiB (Pebble's
// limit) or more.
func TestMemTableBytesFlag(t *testing.T) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		t.Skip("GOMEMLIMIT is set: the budget is not logged")
	}
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	args := func(memTable string) []string {
		return []string{"process", "--brokers", c.ListenAddrs()[0], "--partitions", "1", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0",
			"--cache-bytes", "16777216", "--memtable-bytes", memTable}
	}
	for _, bad := range []string{"1000", "4294967296"} {
		cmd, err := runCmd(t, args(bad)...)
		if err == nil || !strings.Contains(err.Error(), "--memtable-bytes "+bad) {
			t.Fatalf("--memtable-bytes %s: err = %v, want one naming the flag\nstderr:\n%s", bad, err, cmd.err)
		}
	}
	cmd := startCmd(t, args("8388608")...)
	cmd.addr(t, "processor api listening")
	want := fmt.Sprintf("pebble_bytes=%d", 16<<20+2*(8<<20))
	if log := cmd.err.String(); !strings.Contains(log, want) {
		t.Fatalf("the memory limit's log line lacks %s:\n%s", want, log)
	}
	if err := cmd.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	log := slog.New(slog.DiscardHandler)

	t.Run("sets the runtime's limit", func(t *testing.T) {
		if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
			t.Skip("GOMEMLIMIT is set")
		}
		debug.SetMemoryLimit(math.MaxInt64)
		if err := applyMemoryLimit(defaultMemoryLimit, defaultCacheBytes, defaultMemTableBytes, log); err != nil {
			t.Fatal(err)
		}
		want, _ := goMemoryLimit(defaultMemoryLimit, pebbleMemory(defaultCacheBytes, defaultMemTableBytes), !cgoBuild())
		if got := debug.SetMemoryLimit(-1); got != want {
			t.Fatalf("runtime memory limit = %d, want %d", got, want)
		}
	})
	t.Run("zero leaves it alone", func(t *testing.T) {
		debug.SetMemoryLimit(math.MaxInt64)
		if err := applyMemoryLimit(0, defaultCacheBytes, defaultMemTableBytes, log); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Fatalf("runtime memory limit = %d, want none", got)
		}
	})
	t.Run("GOMEMLIMIT wins", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "1GiB")
		debug.SetMemoryLimit(math.MaxInt64)
		if err := applyMemoryLimit(defaultMemoryLimit, defaultCacheBytes, defaultMemTableBytes, log); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Fatalf("runtime memory limit = %d, want GOMEMLIMIT's (left alone)", got)
		}
	})
	t.Run("a cache too large for the limit fails", func(t *testing.T) {
		if err := applyMemoryLimit(defaultMemoryLimit, 1<<30, defaultMemTableBytes, log); err == nil {
			t.Fatal("applyMemoryLimit with a 1 GiB cache in 256 MiB: no error")
		}
	})
}

// TestMallocArenas checks that a cgo build on Linux limited glibc to one
// malloc arena when it was loaded (malloc_cgo.go).
func TestMallocArenas(t *testing.T) {
	if !cgoBuild() || runtime.GOOS != "linux" {
		t.Skip("not a cgo build on Linux")
	}
	if _, ok := os.LookupEnv("MALLOC_ARENA_MAX"); ok {
		t.Skip("MALLOC_ARENA_MAX is set: glibc's own setting applies")
	}
	if got := mallocArenaLimit(); got != 1 {
		t.Fatalf("malloc arena limit = %d, want 1", got)
	}
}
