//go:build linux && (amd64 || arm64)

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection; the accepted end
// with raw reads and writes when raw is set.
func tcpPair(t *testing.T, raw bool) (srv net.Conn, peer *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if raw {
		s = rawIO(s)
		if _, ok := s.(*rawTCP); !ok {
			t.Fatalf("rawIO gave %T", s)
		}
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s, c.(*net.TCPConn)
}

// errClass names what net/http and the proxy look at in an I/O error.
func errClass(err error) string {
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "EOF"
	case !errors.As(err, &oe):
		return fmt.Sprintf("not an OpError: %T %v", err, err)
	case errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded):
		return oe.Op + ": timeout"
	case errors.Is(err, net.ErrClosed):
		return oe.Op + ": closed"
	case errors.Is(err, syscall.ECONNRESET):
		return oe.Op + ": reset"
	case errors.Is(err, syscall.EPIPE):
		return oe.Op + ": broken pipe"
	}
	return oe.Op + ": " + err.Error()
}

// Raw reads and writes give the same bytes, and errors of the same kinds,
// as the net package's own: end of stream, deadlines (also in the middle
// of a write that waits for the peer), a close from another goroutine, a
// reset, and writes that fill the socket and wait.
func TestRawConnActsAsTCPConn(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB: many waits for the poller
	cases := []struct {
		name string
		want string
		run  func(t *testing.T, c net.Conn, peer *net.TCPConn) string
	}{
		{"read-large", "nil", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			go func() { peer.Write(big); peer.CloseWrite() }()
			got, err := io.ReadAll(c)
			if !bytes.Equal(got, big) {
				return fmt.Sprintf("read %d bytes, not the %d sent", len(got), len(big))
			}
			return errClass(err)
		}},
		{"write-large", "nil", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			done := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(bufio.NewReaderSize(peer, 1000)) // a slow reader: the writer waits
				done <- b
			}()
			n, err := c.Write(big)
			c.(interface{ CloseWrite() error }).CloseWrite()
			if got := <-done; n != len(big) || !bytes.Equal(got, big) {
				return fmt.Sprintf("wrote %d, peer got %d bytes", n, len(got))
			}
			return errClass(err)
		}},
		{"end-of-stream", "EOF", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			peer.Write([]byte("x"))
			peer.Close()
			var b [8]byte
			if n, err := io.ReadFull(c, b[:1]); n != 1 {
				return errClass(err)
			}
			_, err := c.Read(b[:])
			return errClass(err)
		}},
		{"read-deadline", "read: timeout", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			var b [8]byte
			_, err := c.Read(b[:])
			return errClass(err)
		}},
		{"write-deadline-midway", "write: timeout", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			huge := bytes.Repeat(big, 8) // 64 MiB to a peer that reads nothing
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := c.Write(huge)
			if n == 0 || n >= len(huge) {
				return fmt.Sprintf("wrote %d bytes before the deadline", n)
			}
			return errClass(err)
		}},
		{"closed-while-reading", "read: closed", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			errc := make(chan error)
			go func() {
				var b [8]byte
				_, err := c.Read(b[:])
				errc <- err
			}()
			// The read is blocked (nothing comes); closing ends it.
			for i := 0; i < 5; i++ {
				runtime.Gosched()
			}
			c.Close()
			return errClass(<-errc)
		}},
		{"closed-then-write", "write: closed", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			c.Close()
			_, err := c.Write([]byte("x"))
			return errClass(err)
		}},
		{"reset-read", "read: reset", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			peer.SetLinger(0)
			peer.Close()
			var b [8]byte
			_, err := c.Read(b[:])
			return errClass(err)
		}},
		{"reset-write", "write: reset|write: broken pipe", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			peer.SetLinger(0)
			peer.Close()
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := c.Write([]byte("x")); err != nil {
					return errClass(err)
				}
				time.Sleep(time.Millisecond)
			}
			return "writes never failed"
		}},
		{"empty-on-closed", "read: closed, write: closed", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			c.Close()
			_, rerr := c.Read(nil)
			_, werr := c.Write(nil)
			return errClass(rerr) + ", " + errClass(werr)
		}},
		{"empty", "nil", func(t *testing.T, c net.Conn, peer *net.TCPConn) string {
			if n, err := c.Write(nil); n != 0 || err != nil {
				return fmt.Sprintf("empty write: %d %v", n, err)
			}
			n, err := c.Read(nil)
			if n != 0 {
				return fmt.Sprintf("empty read: %d", n)
			}
			return errClass(err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got [2]string
			for i, raw := range []bool{false, true} {
				c, peer := tcpPair(t, raw)
				got[i] = tc.run(t, c, peer)
			}
			if got[1] != got[0] {
				t.Errorf("raw: %q, net package: %q", got[1], got[0])
			}
			if !strings.Contains("|"+tc.want+"|", "|"+got[1]+"|") {
				t.Errorf("raw: %q, want %q", got[1], tc.want)
			}
		})
	}
}

// Reads and writes on one raw connection from two goroutines at once, as
// a tunnel or net/http's background read does, each see their own bytes.
func TestRawConnReadsWhileWriting(t *testing.T) {
	t.Parallel()
	c, peer := tcpPair(t, true)
	go io.Copy(peer, peer) // echo
	const rounds = 2000
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < rounds; i++ {
			if _, err := fmt.Fprintf(c, "%08d", i); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var b [8]byte
	for i := 0; i < rounds; i++ {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if got, _ := strconv.Atoi(string(b[:])); got != i {
			t.Fatalf("read %q, want %08d", b, i)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Both sides of the proxy use raw I/O: clients' connections (under the
// guard) and upstream connections (under theirs).
func TestProxyConnectionsAreRaw(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &Server{cfg: &Config{}}
	gl := s.guardListener(ln, nil)
	dial := guardUpstream((&net.Dialer{}).DialContext, false, Timeouts{})
	up, err := dial(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	c, err := gl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*guardConn).Conn.(*rawTCP); !ok {
		t.Errorf("client connection: %T under the guard, want *rawTCP", c.(*guardConn).Conn)
	}
	if _, ok := up.(*upstreamConn).Conn.(*rawTCP); !ok {
		t.Errorf("upstream connection: %T under the guard, want *rawTCP", up.(*upstreamConn).Conn)
	}
	if newPeeker(up) == nil {
		t.Error("no peeker for a raw upstream connection: idle connections would go unchecked")
	}
}

// The hazard raw I/O brings, and wakeMonitor's answer to it, in a child
// process on one P (GOMAXPROCS=1). With every read and write raw and no
// timer pending, Go's monitor thread stays parked once the process has
// idled, and nothing preempts a goroutine that computes: a request that
// came meanwhile waits for it to end. wakeMonitor before the work lets the
// monitor preempt it within its 10 ms time slice. Both arms run, so the
// test shows it can tell the two apart.
func TestHeavyWorkStaysPreemptible(t *testing.T) {
	if os.Getenv("STRANGLER_TEST_PREEMPT_CHILD") != "" {
		preemptChild(os.Getenv("STRANGLER_TEST_PREEMPT_CHILD") == "wake")
		return
	}
	// Not parallel: its child must not compete with the other child test
	// for the CPU.
	if got := runPreemptChild(t, true); got != "preempted" {
		t.Errorf("wakeMonitor: the child says %q, want preempted", got)
	}
	// The control, without wakeMonitor, up to three times: on a loaded
	// machine the child can look quiet (waitQuiet) only because it got no
	// CPU, its monitor not yet parked, and that monitor then preempts.
	// One starved child shows the hazard is there to be told apart.
	var got []string
	for range 3 {
		v := runPreemptChild(t, false)
		if v == "starved" {
			return
		}
		got = append(got, v)
	}
	t.Errorf("no wakeMonitor: the children say %q, want starved (the monitor parked, nothing preempts)", got)
}

// spinLimit is how long the child's computation runs if nothing preempts
// it; preempted, it ends within tens of milliseconds.
const spinLimit = 3 * time.Second

func runPreemptChild(t *testing.T, wake bool) string {
	t.Helper()
	arg := "park"
	if wake {
		arg = "wake"
	}
	cmd, lines, addr := startChild(t, "TestHeavyWorkStaysPreemptible", "STRANGLER_TEST_PREEMPT_CHILD="+arg)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The child now blocks in a raw read. Wait until its threads stop
	// switching: its monitor has parked.
	waitQuiet(t, cmd.Process.Pid)
	if _, err := conn.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if l, err := br.ReadString('\n'); l != "spinning\n" {
		t.Fatalf("child: %q, %v", l, err)
	}
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() {
		t.Fatal("child gave no verdict")
	}
	return lines.Text()
}

// startChild runs the test binary's test named test alone, on one P, with
// env added, and returns it, its standard output and the address it
// printed first. The child is killed and reaped when the test ends.
func startChild(t *testing.T, test, env string) (*exec.Cmd, *bufio.Scanner, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env, "GOMAXPROCS=1", "GODEBUG=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(out)
	if !lines.Scan() {
		t.Fatal("child gave no address")
	}
	return cmd, lines, lines.Text()
}

// waitQuiet waits until the process's threads have made no context switch
// for 100 ms.
func waitQuiet(t *testing.T, pid int) {
	t.Helper()
	switches := func() int {
		total := 0
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
					n, _ := strconv.Atoi(strings.TrimSpace(v))
					total += n
				}
			}
		}
		return total
	}
	deadline := time.Now().Add(10 * time.Second)
	last, since := switches(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if n := switches(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 100*time.Millisecond {
			return
		}
	}
	t.Fatal("the child never went quiet")
}

// preemptChild serves one connection with raw I/O only. On "go" it starts
// a reader for "ping", then computes until the reader has run or
// spinLimit has passed, and prints which came first.
func preemptChild(wake bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr())
	nc, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	c := rawIO(nc)
	var b [64]byte
	if n, err := c.Read(b[:]); err != nil || string(b[:n]) != "go\n" {
		panic(fmt.Sprintf("read %q, %v", b[:n], err))
	}
	var pinged atomic.Bool
	go func() {
		var p [64]byte
		c.Read(p[:])
		pinged.Store(true)
	}()
	if _, err := c.Write([]byte("spinning\n")); err != nil {
		panic(err)
	}
	if wake {
		wakeMonitor()
	}
	start := time.Now()
	for !pinged.Load() && time.Since(start) < spinLimit {
	}
	if pinged.Load() {
		fmt.Println("preempted")
	} else {
		fmt.Println("starved")
	}
}

// A comparison of large or compressed answers wakes the monitor first; one
// of small plain answers, most of them, does not (it would cost a thread
// wake-up a request). With noise cancellation, which costs more per byte,
// the size that counts as large is smaller.
func TestHeavyComparisonWakesMonitor(t *testing.T) {
	// Not parallel: it replaces a package variable.
	var wakes atomic.Int32
	saved := beforeHeavyCompare
	beforeHeavyCompare = func() { wakes.Add(1) }
	t.Cleanup(func() { beforeHeavyCompare = saved }) // after the proxies' own cleanup

	bodies := map[string][]byte{
		"half": bigJSON(512),
		"1k":   bigJSON(1 << 10),
		"20k":  bigJSON(20 << 10),
		"100k": bigJSON(100 << 10),
	}
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		size := r.URL.Query().Get("size")
		switch size {
		case "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gzipLevel(bodies["1k"], 6))
			return
		case "cookies": // 3,000 lines, about 90 KiB of head
			for i := range 3000 {
				w.Header().Add("Set-Cookie", fmt.Sprintf("c%d=v; Path=/; Secure; HttpOnly; SameSite=Lax", i))
			}
			size = "half"
		}
		w.Write(bodies[size])
	})
	type step struct {
		size string
		wake bool
	}
	for _, tc := range []struct {
		name  string
		noise string
		steps []step
	}{
		// Two answers: 2, 40 and 200 KiB of bodies together, and 180 KiB
		// of heads; the limit is 160 KiB.
		{"plain", "", []step{{"1k", false}, {"20k", false}, {"100k", true}, {"1k", false}, {"gzip", true}, {"cookies", true}}},
		// With noise, three answers (the monolith's second): 1.5 and 60
		// KiB of bodies; the limit is 4 KiB.
		{"noise", "      noise: true\n", []step{{"half", false}, {"20k", true}, {"half", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wakes.Store(0)
			e := newEnv(t, shadowConfig("      percent: 100\n"+tc.noise), flagJSON("orders-percent", 0), backend, backend)
			var want int32
			for i, st := range tc.steps {
				resp, _ := e.get("/api/orders/7?size="+st.size, "X-User-Id", "u1", "Accept-Encoding", "gzip")
				if resp.StatusCode != 200 {
					t.Fatalf("%s: client got %d", st.size, resp.StatusCode)
				}
				if got := e.comparisons(i + 1); got["match"] != float64(i+1) {
					t.Fatalf("after %s: comparisons %v, want %d matches", st.size, got, i+1)
				}
				if st.wake {
					want++
				}
				if got := wakes.Load(); got != want {
					t.Errorf("after the %s answers (request %d): %d wakes, want %d", st.size, i+1, got, want)
				}
			}
		})
	}
}

// A body streamed between two peers faster than the proxy never makes a
// read or write wait, so its goroutine never parks. In a child process on
// one P (GOMAXPROCS=1), after the process idled (so that Go's monitor
// thread parked), one connection streams for streamFor while a ping comes
// on another: the ping is answered while the stream still runs, because a
// run of reads and writes that do not wait wakes the monitor, which then
// preempts the copy. Without that, the ping waited for the end of the
// stream. Two arms: rounds of 2 KiB with a few passes over each (dense:
// 64 within 10 ms), and of 32 KiB with 250 µs of work each (too slow for
// that window: woken after 256).
func TestStreamDoesNotStarveOtherConnections(t *testing.T) {
	if arm := os.Getenv("STRANGLER_TEST_STREAM_CHILD"); arm != "" {
		streamChild(arm == "slow")
		return
	}
	// Not parallel: its child must not compete with the other child test
	// for the CPU.
	for _, arm := range []string{"dense", "slow"} {
		t.Run(arm, func(t *testing.T) { streamWithPing(t, arm) })
	}
}

func streamWithPing(t *testing.T, arm string) {
	cmd, lines, addr := startChild(t, "TestStreamDoesNotStarveOtherConnections", "STRANGLER_TEST_STREAM_CHILD="+arm)
	dial := func() *net.TCPConn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.TCPConn)
	}
	src, dst, ping := dial(), dial(), dial() // accepted in this order
	src.SetWriteBuffer(8 << 20)
	dst.SetReadBuffer(8 << 20)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatal("child not ready")
	}
	waitQuiet(t, cmd.Process.Pid) // its monitor has parked

	var streaming atomic.Bool
	streaming.Store(true)
	copied := make(chan int64)
	go func() { // a fast source, for streamFor
		b := bytes.Repeat([]byte("x"), 1<<20)
		for end := time.Now().Add(streamFor); time.Now().Before(end); {
			if _, err := src.Write(b); err != nil {
				break
			}
		}
		streaming.Store(false)
		src.CloseWrite()
	}()
	go func() { // a fast sink
		n, _ := io.Copy(io.Discard, dst)
		copied <- n
	}()
	// Once bytes flow, ping.
	var b [1]byte
	if _, err := io.ReadFull(dst, b[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := ping.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	l, err := bufio.NewReader(ping).ReadString('\n')
	during := streaming.Load()
	if l != "pong\n" {
		t.Fatalf("child: %q, %v", l, err)
	}
	if !during {
		t.Errorf("%s rounds: the ping was answered only after the %v stream ended: one streaming connection held the only P", arm, streamFor)
	}
	if n := <-copied; n < 1<<20 {
		t.Errorf("the stream carried %d bytes", n)
	}
}

const streamFor = 3 * time.Second

// streamChild copies one connection to another as a proxy streams a body
// (read, work on each piece, write) and answers pings on a third. The work
// makes the child slower than its two peers, as a proxy on a CPU-limited
// pod is, so that its reads and writes never wait.
func streamChild(slow bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr())
	var conns [3]net.Conn
	for i := range conns {
		c, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		c.(*net.TCPConn).SetReadBuffer(4 << 20)
		c.(*net.TCPConn).SetWriteBuffer(4 << 20)
		conns[i] = rawIO(c)
	}
	src, dst, ping := conns[0], conns[1], conns[2]
	go func() {
		br := bufio.NewReader(ping)
		for {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			ping.Write([]byte("pong\n"))
		}
	}()
	fmt.Println("ready")
	buf := make([]byte, 2048)
	if slow {
		buf = make([]byte, 32<<10)
	}
	var sum byte
	for {
		n, err := src.Read(buf)
		if slow {
			for t0 := time.Now(); time.Since(t0) < 250*time.Microsecond; {
			}
		} else {
			for range 8 {
				for _, b := range buf[:n] {
					sum = sum*31 + b
				}
			}
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			dst.(interface{ CloseWrite() error }).CloseWrite()
			return
		}
	}
}
