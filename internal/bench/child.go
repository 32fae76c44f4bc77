package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is one system under test running as a process of its own, so its
// memory is its own (the embedded broker lives in the bench process) and
// its peak RSS can be read from /proc.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // its stdout and stderr
	done chan struct{}
	err  error // set before done is closed

	peakRSS int64 // VmHWM, read just before it is stopped
	cpu     time.Duration
	stopped bool
}

// startChild runs exe with args, its output to logPath.
func startChild(name, exe string, args, env []string, logPath string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s log: %w", name, err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// exited returns an error when the child has ended on its own.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("bench: %s exited early (%v); its log: %s\n%s", c.name, c.err, c.log, c.tail())
	default:
		return nil
	}
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	const n = 2000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// stop reads the child's peak RSS, then ends it with SIGTERM (SIGKILL if
// it does not end within 15 s) and records its CPU time.
func (c *child) stop() error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	if rss, err := peakRSS(c.cmd.Process.Pid); err == nil {
		c.peakRSS = rss
	}
	select {
	case <-c.done:
		return c.exited()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	if ps := c.cmd.ProcessState; ps != nil {
		c.cpu = ps.UserTime() + ps.SystemTime()
	}
	if c.err != nil && !isSignal(c.err, syscall.SIGTERM) && !isSignal(c.err, syscall.SIGKILL) {
		return fmt.Errorf("bench: %s: %w; its log: %s\n%s", c.name, c.err, c.log, c.tail())
	}
	return nil
}

func isSignal(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("bench: peak rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: peak rss %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("bench: no VmHWM in /proc/%d/status", pid)
}

// freeAddr returns a loopback address whose port was free a moment ago,
// for a child's --http-addr.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// waitHTTP polls url until it answers 200, the child exits, or ctx ends.
func waitHTTP(ctx context.Context, c *child, url string) error {
	client := &http.Client{Timeout: time.Second}
	for {
		if err := c.exited(); err != nil {
			return err
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for %s at %s: %w", c.name, url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func createFile(path string) (*os.File, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return f, nil
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: the kernel's
// USER_HZ, which Linux fixes at 100 for every architecture's /proc ABI.
const userHZ = 100

// procCPU is process pid's CPU time so far, user and system, all its
// threads, from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: cpu time: %w", err)
	}
	return parsePidStat(string(b))
}

// parsePidStat reads utime and stime, fields 14 and 15 of a
// /proc/<pid>/stat line. The command name, field 2, is in parentheses and
// may hold spaces and parentheses itself, so the fields are counted from
// the last ')'.
func parsePidStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: /proc/<pid>/stat: no command name in %.40q", line)
	}
	f := strings.Fields(line[i+1:]) // from field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc/<pid>/stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] { // fields 14 and 15
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/<pid>/stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}
