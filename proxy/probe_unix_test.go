//go:build unix && !aix

package proxy

import (
	"errors"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
)

// scriptedRawConn plays the part of Go's poller for one raw read: it logs
// when the read is armed, calls f, and "waits" (logs it) while f returns
// false, up to waits times; fail refuses the read before f runs.
type scriptedRawConn struct {
	syscall.RawConn
	log   *[]string
	waits int
	fail  error
}

func (c scriptedRawConn) Read(f func(uintptr) bool) error {
	if c.fail != nil {
		*c.log = append(*c.log, "refused")
		return c.fail
	}
	*c.log = append(*c.log, "armed")
	for i := 0; ; i++ {
		if f(0) {
			return nil
		}
		if i == c.waits {
			*c.log = append(*c.log, "deadline")
			return errors.New("i/o timeout")
		}
		*c.log = append(*c.log, "wait")
	}
}

type loggedWriter struct {
	log *[]string
	err error
}

func (w loggedWriter) Write(b []byte) (int, error) {
	*w.log = append(*w.log, "write "+string(b))
	if w.err != nil {
		return 0, w.err
	}
	return len(b), nil
}

// The request is written only once the poller is armed for the answer:
// written before, an answer that came in between could be forgotten by
// the poller and waited for until the deadline. It is written once, the
// call returns only when the answer can be read, and a write that the
// poller refused to arm for (a passed deadline, a closed connection) is
// still made, so that it fails as it always did.
func TestSendAndAwaitWritesOnceArmed(t *testing.T) {
	t.Parallel()
	writeErr := errors.New("broken pipe")
	for _, tc := range []struct {
		name     string
		waits    int
		fail     error
		writeErr error
		want     []string
		wantErr  error
	}{
		{name: "answer after one wait", waits: 1, want: []string{"armed", "write GET", "wait"}},
		{name: "wait ends in a deadline", waits: 0, want: []string{"armed", "write GET", "deadline"}},
		{name: "write fails", waits: 1, writeErr: writeErr, want: []string{"armed", "write GET"}, wantErr: writeErr},
		{name: "poller refuses", fail: errors.New("use of closed network connection"), writeErr: writeErr, want: []string{"refused", "write GET"}, wantErr: writeErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log []string
			p := &peeker{rc: scriptedRawConn{log: &log, waits: tc.waits, fail: tc.fail}}
			p.fn, p.awaitFn = p.peek, p.await
			err := p.sendAndAwait(loggedWriter{log: &log, err: tc.writeErr}, []byte("GET"))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(log, tc.want) {
				t.Fatalf("sequence %q, want %q", log, tc.want)
			}
			if p.w != nil || p.out != nil || p.werr != nil {
				t.Fatal("the peeker keeps the call's writer, bytes or error")
			}
		})
	}
}

// On a real socket: the call returns once the answer has arrived (a read
// takes it at once), and not before.
func TestSendAndAwaitOnASocket(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const delay = 50 * time.Millisecond
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 3)
		if _, err := c.Read(b); err != nil {
			return
		}
		time.Sleep(delay)
		_, _ = c.Write([]byte("answer"))
		_, _ = c.Read(b) // until the client closes
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newPeeker(c)
	start := time.Now()
	if err := p.sendAndAwait(c, []byte("GET")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < delay {
		t.Fatalf("returned after %v, before the answer was sent (%v)", waited, delay)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 16)
	n, err := c.Read(b)
	if string(b[:n]) != "answer" {
		t.Fatalf("read %q, %v; want the answer", b[:n], err)
	}
}
