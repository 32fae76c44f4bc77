// Package kafkabroker runs a real Apache Kafka broker of the caller's own,
// through scripts/kafka, in a state directory of its own, so that a test or
// the chaos harness can stop, kill and start it again without touching any
// other broker on the machine. The address stays the same across restarts
// and the data survives them; Close removes both.
//
// It needs what scripts/kafka needs: Java 17 and Maven (or the jars already
// in the cache scripts/kafka keeps).
package kafkabroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrBroker wraps every failure to start, stop or kill the broker.
var ErrBroker = errors.New("kafka broker")

// Broker is one single-node KRaft broker on 127.0.0.1.
type Broker struct {
	script string
	dir    string
	addr   string
}

// Start starts a broker whose data, logs and ports live under dir (created if
// missing) and waits until it answers. It returns the broker's address as
// HOST:PORT in Addr.
func Start(ctx context.Context, dir string) (*Broker, error) {
	script, err := Script()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBroker, err)
	}
	b := &Broker{script: script, dir: abs}
	if err := b.Restart(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Addr is the broker's address, HOST:PORT; it does not change on restart.
func (b *Broker) Addr() string { return b.addr }

// Dir is the broker's state directory.
func (b *Broker) Dir() string { return b.dir }

// Restart starts the broker if it is not running (on the same port as
// before, with its data) and waits until it answers.
func (b *Broker) Restart(ctx context.Context) error {
	out, err := b.run(ctx, "start")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	addr := strings.TrimSpace(lines[len(lines)-1])
	if _, _, ok := strings.Cut(addr, ":"); !ok {
		return fmt.Errorf("%w: scripts/kafka start printed %q, not HOST:PORT", ErrBroker, addr)
	}
	if b.addr != "" && b.addr != addr {
		return fmt.Errorf("%w: restarted on %s, was %s", ErrBroker, addr, b.addr)
	}
	b.addr = addr
	return nil
}

// Stop stops the broker cleanly (SIGTERM, as an operator would) and waits
// for it to exit.
func (b *Broker) Stop(ctx context.Context) error {
	_, err := b.run(ctx, "stop")
	return err
}

// Kill ends the broker with SIGKILL, as a crash or a lost machine would, and
// waits until it is gone.
func (b *Broker) Kill(ctx context.Context) error {
	raw, err := os.ReadFile(filepath.Join(b.dir, "pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // not running
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBroker, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fmt.Errorf("%w: pid file: %w", ErrBroker, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: kill %d: %w", ErrBroker, pid, err)
	}
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for pid %d to exit: %w", ErrBroker, pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The group leader can be a zombie while the JVM's other threads are
	// still being torn down and hold the listening socket; a restart then
	// would find the port taken and move. Wait until it refuses.
	for b.addr != "" && listening(b.addr) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s still accepts connections after SIGKILL: %w", ErrBroker, b.addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Let scripts/kafka clear its pid file and reap what it can.
	return b.Stop(ctx)
}

// listening reports whether something accepts TCP connections at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Close stops the broker and deletes its data, logs and configuration.
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := b.run(ctx, "stop", "--clean")
	return err
}

// Log returns the last n lines of the broker's server log, for failure
// messages.
func (b *Broker) Log(n int) string {
	raw, err := os.ReadFile(filepath.Join(b.dir, "logs", "server.log"))
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (b *Broker) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.script, args...)
	cmd.Env = append(os.Environ(), "KAFKA_STATE_DIR="+b.dir)
	cmd.Env = append(cmd.Env, "KAFKA_HEAP_OPTS=-Xms128m -Xmx512m")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: scripts/kafka %s: %w\n%s", ErrBroker, strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.String(), nil
}

// Script finds scripts/kafka by walking up from the working directory to the
// module root.
func Script() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBroker, err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			s := filepath.Join(dir, "scripts", "kafka")
			if _, err := os.Stat(s); err != nil {
				return "", fmt.Errorf("%w: %w", ErrBroker, err)
			}
			return s, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory, so no scripts/kafka", ErrBroker)
		}
		dir = parent
	}
}

func zombie(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(raw, ')')
	return i >= 0 && i+2 < len(raw) && raw[i+2] == 'Z'
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
