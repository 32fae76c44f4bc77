package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// proc is one `wastatus` instance: its name, data dir and arguments outlive
// the OS processes that run it, one per start.
type proc struct {
	name   string
	args   []string // everything but --http-addr
	env    []string
	dir    string // data dir; "" for an edge
	logDir string

	starts int
	addr   string // HTTP address, the same for every start
	log    string // log file of the current process
	cmd    *exec.Cmd
	done   chan struct{} // closed once cmd was waited for
	err    error         // Wait's error, set before done is closed
	killed bool          // by the harness, so its end is expected

	restartAt time.Time // when to start again after ending on its own
}

// start starts a new OS process for p, its output in a log file of its
// own. Every process of p listens on the same port, picked at the first
// start, so an edge keeps its URL. The child gets SIGKILL if the harness
// dies, so a crashed run leaves no instance behind.
func (p *proc) start() error {
	if p.addr == "" {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		p.addr = addr
	}
	p.starts++
	p.log = filepath.Join(p.logDir, fmt.Sprintf("%s.%d.log", p.name, p.starts))
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: %s log: %w", p.name, err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(p.args[0], slices.Concat(p.args[1:], []string{"--http-addr", p.addr})...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	p.cmd, p.done, p.err, p.killed = cmd, make(chan struct{}), nil, false
	go func(done chan struct{}) {
		err := cmd.Wait()
		p.err = err
		close(done)
	}(p.done)
	return nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits up to timeout for a clean exit; then it
// kills the process. It returns nil for a clean exit.
func (p *proc) stop(timeout time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	if ended, err := p.exited(); ended {
		return fmt.Errorf("%s had already ended: %w", p.name, err)
	}
	p.killed = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w", p.name, p.err)
		}
		return nil
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, timeout)
	}
}

// exited reports whether the current process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// get returns nil if the process answers 200 to GET path.
func (p *proc) get(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: GET %s: %d %s", p.name, path, resp.StatusCode, strings.Join(strings.Fields(string(b)), " "))
	}
	return nil
}

// waitFor polls p's path until it answers 200, p ends or timeout passes.
func (p *proc) waitFor(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if ended, err := p.exited(); ended {
			return fmt.Errorf("chaos: %s ended while starting: %v\n%s", p.name, err, tail(p.log, 15))
		}
		err := p.get(ctx, path)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("chaos: %s not up after %s: %w", p.name, timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logs returns the log files of every start of p, oldest first.
func (p *proc) logs() []string {
	var out []string
	for i := 1; i <= p.starts; i++ {
		out = append(out, filepath.Join(p.logDir, fmt.Sprintf("%s.%d.log", p.name, i)))
	}
	return out
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("chaos: free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("chaos: free port: %w", err)
	}
	return addr, nil
}

// tail returns the last n lines of the log at path, leaving out Pebble's.
func tail(path string, n int) string {
	var lines []string
	forEachLogLine(path, func(m map[string]any, line string) {
		if m["msg"] != "pebble" {
			lines = append(lines, line)
		}
	})
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// forEachLogLine calls fn with every line of the JSON log at path, decoded
// (nil for a line that is not JSON, such as a panic's).
func forEachLogLine(path string, fn func(m map[string]any, line string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = nil
		}
		fn(m, sc.Text())
	}
}

// prepared counts a processor's "partition prepared" log lines, partitions
// restored from the current topic and partitions caught up silently, and
// its transactions aborted by rebalances and ends cancelled.
type prepared struct {
	restores, catchUps       int
	restored, caughtUp       int64 // records read
	restoreTook, catchUpTook time.Duration
	aborted, endsCancelled   int
}

func (s *prepared) add(path string) {
	forEachLogLine(path, func(m map[string]any, _ string) {
		switch m["msg"] {
		case "transaction aborted by a rebalance; its records will be read again":
			s.aborted++
			return
		case "transaction end cancelled and its transaction aborted; its records will be read again":
			s.endsCancelled++
			return
		case "partition prepared":
		default:
			return
		}
		why, _ := m["why"].(string)
		records, _ := m["records"].(float64)
		took, _ := m["took"].(float64) // slog's JSON handler writes nanoseconds
		if strings.Contains(why, "restoring") {
			s.restores++
			s.restored += int64(records)
			s.restoreTook += time.Duration(took)
		} else if strings.Contains(why, "catching up") {
			s.catchUps++
			s.caughtUp += int64(records)
			s.catchUpTook += time.Duration(took)
		}
	})
}
