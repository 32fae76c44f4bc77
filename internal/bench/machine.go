package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MachineCPU is what the whole machine's CPUs did during a phase, in cores
// (CPU-seconds a second), from the kernel's counters (/proc/stat): the
// system under test, the bench, the broker when it runs here, and anything
// else. Busy cores near the machine's count mean the phase was CPU-bound;
// idle cores mean its rate was set by something else, such as the
// broker's latency. Steal is time the hypervisor gave to other guests,
// when the machine is a VM: neighbours a run cannot see otherwise.
type MachineCPU struct {
	CPUs       int     `json:"cpus"`
	BusyCores  float64 `json:"busy_cores"`
	IdleCores  float64 `json:"idle_cores"`
	StealCores float64 `json:"steal_cores"`
}

func (m *MachineCPU) String() string {
	if m == nil {
		return ""
	}
	return fmt.Sprintf("machine: %.2f of %d cores busy, %.2f idle, %.2f stolen", m.BusyCores, m.CPUs, m.IdleCores, m.StealCores)
}

// cpuTicks is one reading of the machine's CPU counters, summed over its
// CPUs, in the kernel's clock ticks.
type cpuTicks struct {
	cpus              int
	busy, idle, steal uint64
	ok                bool
}

func (t cpuTicks) total() uint64 { return t.busy + t.idle + t.steal }

// readCPUTicks reads /proc/stat; ok is false where it is missing (not
// Linux) or unreadable.
func readCPUTicks() cpuTicks {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTicks{}
	}
	defer f.Close()
	t, err := parseProcStat(f)
	if err != nil {
		return cpuTicks{}
	}
	return t
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat (user nice
// system idle iowait irq softirq steal ...) and counts the per-CPU lines.
// Guest time is already in user and nice, so it is not added again. The
// cpu lines come first; it stops at the first other line, and so never
// reads the "intr" line, longer than a Scanner's 64 KiB on hosts with
// many CPUs and interrupts.
func parseProcStat(r io.Reader) (cpuTicks, error) {
	var t cpuTicks
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			break
		}
		if fields[0] != "cpu" {
			t.cpus++
			continue
		}
		if len(fields) < 9 {
			return cpuTicks{}, fmt.Errorf("bench: /proc/stat: %d fields on the cpu line, want at least 8", len(fields)-1)
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(fields[i+1], 10, 64)
			if err != nil {
				return cpuTicks{}, fmt.Errorf("bench: /proc/stat: %w", err)
			}
			v[i] = n
		}
		user, nice, system, idle, iowait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
		t.busy = user + nice + system + irq + softirq
		t.idle = idle + iowait
		t.steal = steal
		t.ok = true
	}
	if err := sc.Err(); err != nil {
		return cpuTicks{}, fmt.Errorf("bench: /proc/stat: %w", err)
	}
	if !t.ok || t.cpus == 0 {
		return cpuTicks{}, fmt.Errorf("bench: /proc/stat: no cpu lines")
	}
	return t, nil
}

// machineSince returns what the machine did between from and to, as
// shares of its CPUs (no clock-tick rate needed), or nil when either
// reading failed or no time passed.
func machineSince(from, to cpuTicks) *MachineCPU {
	if !from.ok || !to.ok || to.total() <= from.total() || to.cpus != from.cpus {
		return nil
	}
	dt := float64(to.total() - from.total())
	cores := func(a, b uint64) float64 {
		if b < a { // a counter went backwards: report nothing wrong
			return 0
		}
		return round(float64(from.cpus)*float64(b-a)/dt, 2)
	}
	return &MachineCPU{
		CPUs:       from.cpus,
		BusyCores:  cores(from.busy, to.busy),
		IdleCores:  cores(from.idle, to.idle),
		StealCores: cores(from.steal, to.steal),
	}
}
