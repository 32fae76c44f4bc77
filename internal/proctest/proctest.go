// Package proctest runs a program as separate OS processes for crash tests:
// build it once, start instances whose output goes to a log file each,
// SIGKILL or SIGTERM them, and notice the ones that died on their own.
//
// Every started process is killed when its test ends. Nothing here calls
// t.Fatal from a goroutine: the one goroutine per process only waits for it.
package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Build compiles the main package pkg (an import path or a directory) with
// go build into a temporary directory of t and returns the binary's path.
func Build(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append(append([]string{"build", "-o", bin}, flags...), pkg)
	began := time.Now()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built %s in %s", pkg, time.Since(began).Round(time.Millisecond))
	return bin
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// Proc is one running (or ended) process.
type Proc struct {
	// Log is the file that receives the process's stdout and stderr.
	Log string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process was waited for
	err  error         // Wait's error, set before done is closed
}

// Start starts bin with args and env (added to this process's environment,
// later entries winning), its output appended to the file log, and kills it
// when t ends.
func Start(t testing.TB, bin, log string, env []string, args ...string) *Proc {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &Proc{Log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Kill sends SIGKILL and waits until the process is gone. It does nothing
// to a process that has ended.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to timeout for the process to end; then
// it kills it and says so. It returns how the process ended (see Exited).
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("did not stop within %s of SIGTERM; killed", timeout)
	}
}

// Exited reports whether the process has ended and, if so, how: nil for a
// zero exit status, else the *exec.ExitError (see Signaled).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Signaled reports whether err, as Exited or Stop return it, says the
// process was ended by sig.
func Signaled(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
