package bench

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParsePidStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 1234, stime 566.
	line := "4242 (wastatus (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 566 0 0 20 0 9 0 123 456 789\n"
	got, err := parsePidStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 18 * time.Second; got != want {
		t.Errorf("cpu %v, want %v", got, want)
	}
	for _, bad := range []string{"", "4242 wastatus S 1", "4242 (w) S 1 2 3", "4242 (w) S 1 4242 4242 0 -1 4194560 100 0 0 0 12x 566 0"} {
		if _, err := parsePidStat(bad); err == nil {
			t.Errorf("parsePidStat(%q): no error", bad)
		}
	}
}

// TestProcCPU checks the CPU time read from /proc against the kernel's
// own count for this process, after burning some.
func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	var ru syscall.Rusage
	began := time.Now()
	x := uint64(1)
	for time.Since(began) < 200*time.Millisecond {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	got, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// /proc counts in ticks of 10 ms; rusage is finer.
	if d := got - want; d < -50*time.Millisecond || d > 50*time.Millisecond || got < 100*time.Millisecond {
		t.Errorf("/proc says %v of CPU, getrusage %v (x %d)", got, want, x)
	}
}
