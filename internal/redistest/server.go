// Package redistest runs real redis-server processes on free 127.0.0.1 ports
// for tests, benchmarks and the demo, and can kill, pause and restart them.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoBinary is returned when no redis-server binary can be found.
var ErrNoBinary = errors.New("redis-server not found (set QUORUMLOCK_REDIS_SERVER or put it on PATH; on Debian: apt-get install redis-server)")

// Binary returns the redis-server to run: $QUORUMLOCK_REDIS_SERVER, else the
// one on PATH.
func Binary() (string, error) {
	if p := os.Getenv("QUORUMLOCK_REDIS_SERVER"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoBinary
	}
	return p, nil
}

// Server is one redis-server process listening on 127.0.0.1. Its methods are
// safe for concurrent use.
type Server struct {
	Addr string // 127.0.0.1:port, the same across restarts
	Port int
	Dir  string // working directory (RDB and AOF files)

	bin  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// StartServer starts redis-server with the given extra arguments (for example
// "--appendonly", "yes") in dir, on a free port. The server keeps no RDB
// snapshot unless the arguments ask for one.
func StartServer(dir string, extra ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var last error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir, bin: bin}
		s.args = append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--daemonize", "no", "--save", "", "--appendonly", "no",
			"--logfile", filepath.Join(dir, "redis.log"), "--loglevel", "warning",
		}, extra...)
		if last = s.Start(); last == nil {
			return s, nil
		}
	}
	return nil, last
}

// Start starts the process again (after Kill or Stop) on the same port and
// directory, and waits until it answers PING.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("redistest: %s is already running", s.Addr)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr) == nil {
			s.cmd, s.exited, s.paused = cmd, exited, false
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redistest: redis-server on %s exited at start: %s", s.Addr, s.logTail())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redistest: redis-server on %s not ready after 10s: %s", s.Addr, s.logTail())
		}
	}
}

// Kill sends SIGKILL (nothing is saved) and waits for the process to exit.
func (s *Server) Kill() error { return s.signalAndWait(syscall.SIGKILL) }

// Stop sends SIGTERM (Redis saves its data if persistence is configured) and
// waits for the process to exit.
func (s *Server) Stop() error { return s.signalAndWait(syscall.SIGTERM) }

// Pause stops the process with SIGSTOP: connections stay open and commands
// hang, as on a hung node.
func (s *Server) Pause() error { return s.signalPaused(syscall.SIGSTOP, true) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() error { return s.signalPaused(syscall.SIGCONT, false) }

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// URL returns the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr }

func (s *Server) signalPaused(sig syscall.Signal, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("redistest: %s is not running", s.Addr)
	}
	s.paused = paused
	return s.cmd.Process.Signal(sig)
}

func (s *Server) signalAndWait(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	if s.paused && sig != syscall.SIGKILL {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd, s.exited, s.paused = nil, nil, false
	return nil
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil || len(b) == 0 {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends a raw PING and expects +PONG (a loading server answers -LOADING,
// one with a password -NOAUTH).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server that wants a password answers -NOAUTH: it is up all the same.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}
