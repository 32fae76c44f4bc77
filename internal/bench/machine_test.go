package bench

import (
	"strings"
	"testing"
)

const procStatBefore = `cpu  1000 50 300 5000 100 10 20 30 0 0
cpu0 500 25 150 2500 50 5 10 15 0 0
cpu1 500 25 150 2500 50 5 10 15 0 0
intr 123 4 5
ctxt 999
btime 1700000000
`

// Two CPUs over 100 ticks each (200 in all): 130 busy (user 90, nice 10,
// system 20, irq 4, softirq 6), 60 idle (idle 50, iowait 10), 10 stolen.
const procStatAfter = `cpu  1090 60 320 5050 110 14 26 40 7 0
cpu0 545 30 160 2525 55 7 13 20 3 0
cpu1 545 30 160 2525 55 7 13 20 4 0
intr 456 4 5
`

func TestMachineSince(t *testing.T) {
	from, err := parseProcStat(strings.NewReader(procStatBefore))
	if err != nil {
		t.Fatal(err)
	}
	to, err := parseProcStat(strings.NewReader(procStatAfter))
	if err != nil {
		t.Fatal(err)
	}
	got := machineSince(from, to)
	want := MachineCPU{CPUs: 2, BusyCores: 1.3, IdleCores: 0.6, StealCores: 0.1}
	if got == nil || *got != want {
		t.Fatalf("machineSince = %+v, want %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "1.30 of 2 cores busy") || !strings.Contains(s, "0.60 idle") {
		t.Errorf("String() = %q", s)
	}
	for name, pair := range map[string][2]cpuTicks{
		"no time passed":   {from, from},
		"a failed reading": {from, {}},
		"CPUs changed":     {from, {cpus: 3, busy: to.busy, idle: to.idle, steal: to.steal, ok: true}},
	} {
		if m := machineSince(pair[0], pair[1]); m != nil {
			t.Errorf("%s: %+v, want nil", name, m)
		}
	}
}

func TestParseProcStatRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":            "",
		"no cpu line":      "intr 1 2\n",
		"short cpu line":   "cpu 1 2 3 4\ncpu0 1 2 3 4\n",
		"not a number":     "cpu 1 2 x 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n",
		"no per-cpu lines": "cpu 1 2 3 4 5 6 7 8\n",
		"cpu lines late":   "intr 1 2\ncpu 1 2 3 4 5 6 7 8\ncpu0 1 2 3 4 5 6 7 8\n",
	} {
		if _, err := parseProcStat(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestParseProcStatLongLines: the lines after the cpu lines are not read,
// however long (the intr line of a host with many CPUs and interrupts
// outgrows a Scanner's buffer).
func TestParseProcStatLongLines(t *testing.T) {
	in := procStatBefore + "intr" + strings.Repeat(" 12345", 20000) + "\n"
	got, err := parseProcStat(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got.cpus != 2 || got.busy != 1000+50+300+10+20 || got.idle != 5000+100 || got.steal != 30 {
		t.Fatalf("parsed %+v", got)
	}
}
