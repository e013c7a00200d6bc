package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clientProc is the parent's side of the client process (see client.go for the
// protocol).
type clientProc struct {
	cmd  *exec.Cmd
	in   *bufio.Writer
	pipe io.WriteCloser
	msgs chan []string // the client's lines, split into fields; closed at its EOF

	// closes holds every "closed" line seen so far, by socket, whatever was waiting
	// for another line when it came.
	closes map[int]closeReport

	waitOnce sync.Once
	waitErr  error
}

// A closeReport is the end of one socket, as the client saw it.
type closeReport struct {
	code   int
	at     time.Time // the client's wall clock when its read returned
	reason string
}

// startClient starts this program again as the client process, dialing url from
// sources source addresses (see client.go).
func startClient(url string, dialConc, sources int, stderr io.Writer, extra ...string) (*clientProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	cmd := exec.Command(exe, append([]string{clientFlag, url, strconv.Itoa(dialConc), strconv.Itoa(sources)}, extra...)...)
	cmd.Stderr = stderr
	dieWithParent(cmd)
	pipe, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	p := &clientProc{cmd: cmd, pipe: pipe, in: bufio.NewWriterSize(pipe, 64<<10),
		msgs: make(chan []string, 1024), closes: map[int]closeReport{}}
	go func() {
		defer close(p.msgs)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.msgs <- strings.Fields(sc.Text())
		}
	}()
	return p, nil
}

// send sends lines to the client.
func (p *clientProc) send(lines ...string) error {
	for _, l := range lines {
		if _, err := p.in.WriteString(l + "\n"); err != nil {
			return fmt.Errorf("client process: %w", err)
		}
	}
	if err := p.in.Flush(); err != nil {
		return fmt.Errorf("client process: %w", err)
	}
	return nil
}

var errClientGone = errors.New("client process: ended unexpectedly")

// next returns the next line of the client that is not a "closed" report, recording
// those on the way, within timeout.
func (p *clientProc) next(timeout time.Duration) ([]string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case f, ok := <-p.msgs:
			if !ok {
				return nil, errClientGone
			}
			if len(f) == 0 {
				continue
			}
			if f[0] == "closed" {
				p.recordClose(f)
				continue
			}
			return f, nil
		case <-t.C:
			return nil, fmt.Errorf("client process: no answer in %v", timeout)
		}
	}
}

// waitClose waits until socket i is reported closed, within timeout.
func (p *clientProc) waitClose(i int, timeout time.Duration) (closeReport, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if r, ok := p.closes[i]; ok {
			return r, nil
		}
		select {
		case f, ok := <-p.msgs:
			if !ok {
				return closeReport{}, errClientGone
			}
			if len(f) > 0 && f[0] == "closed" {
				p.recordClose(f)
				continue
			}
			return closeReport{}, fmt.Errorf("client process: unexpected %q", strings.Join(f, " "))
		case <-t.C:
			return closeReport{}, fmt.Errorf("no close frame in %v", timeout)
		}
	}
}

// drain records the "closed" reports already sent.
func (p *clientProc) drain() {
	for {
		select {
		case f, ok := <-p.msgs:
			if !ok {
				return
			}
			if len(f) > 0 && f[0] == "closed" {
				p.recordClose(f)
			}
		default:
			return
		}
	}
}

func (p *clientProc) recordClose(f []string) {
	if len(f) < 4 {
		return
	}
	i, err1 := strconv.Atoi(f[1])
	code, err2 := strconv.Atoi(f[2])
	ns, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return
	}
	p.closes[i] = closeReport{code: code, at: time.Unix(0, ns), reason: strings.Join(f[4:], " ")}
}

// wait waits for the client process to exit, within timeout, and kills it after.
func (p *clientProc) wait(timeout time.Duration) error {
	p.waitOnce.Do(func() {
		_ = p.pipe.Close() // the client exits at the end of its stdin
		done := make(chan error, 1)
		go func() {
			for range p.msgs {
			}
			done <- p.cmd.Wait()
		}()
		select {
		case p.waitErr = <-done:
		case <-time.After(timeout):
			_ = p.cmd.Process.Kill()
			p.waitErr = fmt.Errorf("client process: still running after %v, killed: %v", timeout, <-done)
		}
	})
	return p.waitErr
}

// ints parses fields as integers.
func ints(f []string) ([]int64, error) {
	v := make([]int64, len(f))
	for i, s := range f {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("client process: bad number %q", s)
		}
		v[i] = n
	}
	return v, nil
}
