//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// The floors are two proxies written only to be measured: they do the
// least a proxy can do in Go, so that the table shows how much of
// Strangler's CPU per request any Go proxy pays, and how much is
// Strangler's own. Each keeps one upstream connection per client
// connection (no pool, no lock, no check before reuse), forwards the
// request head with X-Forwarded-For, sends the split's 10 % to the
// service, and copies back an answer framed by Content-Length. In the
// shadow scenario they then send the same head to the other side on the
// same goroutine and discard the answer, as nginx's mirror does (no
// queue, no capture, no comparison). They validate nothing, have no
// limits, timeouts, metrics, flags or retries, and refuse what the load
// never sends (a request body, a chunked answer): they are yardsticks, not
// proxies to deploy.
//
//   - go-net: Go's net package and a goroutine per connection, no HTTP
//     library: what Go's runtime and network poller cost.
//   - go-nethttp: the same forwarding behind net/http's server: the least
//     a proxy built on net/http can cost.

// floorFlag, as the first argument, turns the harness into a floor:
// `strangler-bench -floor go-net|go-nethttp LISTEN MONOLITH SERVICE
// [shadow]`.
// It is not in the usage text because only the harness starts floors.
const floorFlag = "-floor"

// floorRoutePrefix is the split route's path prefix, as in the configs of
// the other peers.
const floorRoutePrefix = "/api/orders/"

// floorToService reports whether the floor sends a request for path from
// user to the service: the route, and 10 % of users by FNV-1a of the route
// name and the user, as nginx's split_clients hashes them (with its own
// hash, so the users differ, not the share).
func floorToService(path, user []byte) bool {
	if !bytes.HasPrefix(path, []byte(floorRoutePrefix)) {
		return false
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte("orders"))
	_, _ = h.Write(user)
	return h.Sum32()%100 < 10
}

// errFloorUnsupported is what a floor answers to what the load never
// sends.
var errFloorUnsupported = errors.New("not supported by the floor")

// floorUpstream is one keep-alive connection to a backend, owned by one
// client connection, dialled on first use.
type floorUpstream struct {
	addr       string
	c          net.Conn
	br         *bufio.Reader
	closeAfter bool // the answer said Connection: close
}

// roundTrip writes head and reads the answer's head, handing line the
// status line and then each field line but Connection (CRLF included; the
// slices are valid until the next read). It returns the body's length;
// the caller reads the body from u.br and then calls done.
func (u *floorUpstream) roundTrip(head []byte, line func([]byte) error) (int, error) {
	if u.c == nil {
		c, err := net.Dial("tcp", u.addr)
		if err != nil {
			return 0, err
		}
		u.c, u.br = c, bufio.NewReaderSize(c, 16<<10)
	}
	if _, err := u.c.Write(head); err != nil {
		u.close()
		return 0, err
	}
	n := -1
	u.closeAfter = false
	for i := 0; ; i++ {
		l, err := u.br.ReadSlice('\n')
		if err != nil {
			u.close()
			return 0, err
		}
		if len(l) <= 2 {
			break
		}
		if i == 0 && !bytes.HasPrefix(l, []byte("HTTP/1.1 ")) {
			u.close()
			return 0, fmt.Errorf("answer %q: %w", l, errFloorUnsupported)
		}
		if k, v, ok := bytes.Cut(l, []byte(":")); i > 0 && ok {
			switch {
			case bytes.EqualFold(k, []byte("Content-Length")):
				if n, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil || n < 0 {
					u.close()
					return 0, fmt.Errorf("Content-Length %q", bytes.TrimSpace(v))
				}
			case bytes.EqualFold(k, []byte("Transfer-Encoding")):
				u.close()
				return 0, fmt.Errorf("answer field %s: %w", k, errFloorUnsupported)
			case bytes.EqualFold(k, []byte("Connection")):
				u.closeAfter = u.closeAfter || bytes.Contains(bytes.ToLower(v), []byte("close"))
				continue
			}
		}
		if err := line(l); err != nil {
			u.close()
			return 0, err
		}
	}
	if n < 0 {
		u.close()
		return 0, fmt.Errorf("answer without Content-Length: %w", errFloorUnsupported)
	}
	return n, nil
}

// done ends an answer whose body has been read.
func (u *floorUpstream) done() {
	if u.closeAfter {
		u.close()
	}
}

// mirror sends head, which ends in a blank line, as a shadow copy marked
// with X-Strangler-Shadow, and discards the answer. A failure only drops
// the connection: a shadow copy never touches the client.
func (u *floorUpstream) mirror(head []byte) {
	head = append(head[:len(head)-2], shadowHeader+": 1\r\n\r\n"...)
	n, err := u.roundTrip(head, func([]byte) error { return nil })
	if err != nil {
		return
	}
	if _, err := u.br.Discard(n); err != nil {
		u.close()
		return
	}
	u.done()
}

// close drops the connection; the next round trip dials a new one.
func (u *floorUpstream) close() {
	if u.c != nil {
		_ = u.c.Close()
		u.c, u.br = nil, nil
	}
}

// floorNet is the go-net floor: one goroutine per client connection that
// reads request heads and writes answers itself.
type floorNet struct {
	monolith, service string
	shadow            bool
}

// serve handles one client connection until it closes or sends what the
// floor does not support.
func (f *floorNet) serve(c net.Conn) {
	defer c.Close()
	ups := [2]floorUpstream{{addr: f.monolith}, {addr: f.service}}
	defer ups[0].close()
	defer ups[1].close()
	client, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	br := bufio.NewReaderSize(c, 4<<10)
	head := make([]byte, 0, 4<<10)
	out := make([]byte, 0, 16<<10)
	for {
		head = head[:0]
		var path, user []byte
		clientClose := false
		for i := 0; ; i++ {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(l) <= 2 {
				break
			}
			if i == 0 {
				_, rest, _ := bytes.Cut(l, []byte(" "))
				target, _, ok := bytes.Cut(rest, []byte(" "))
				if !ok {
					return
				}
				path = append(path[:0], target...)
			} else if k, v, ok := bytes.Cut(l, []byte(":")); ok {
				switch {
				case bytes.EqualFold(k, []byte("X-User-Id")):
					user = append(user[:0], bytes.TrimSpace(v)...)
				case bytes.EqualFold(k, []byte("Connection")): // hop-by-hop: not forwarded
					clientClose = bytes.Contains(bytes.ToLower(v), []byte("close"))
					continue
				case bytes.EqualFold(k, []byte("Content-Length")), bytes.EqualFold(k, []byte("Transfer-Encoding")):
					_, _ = c.Write([]byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
					return
				}
			}
			head = append(head, l...)
		}
		head = append(append(append(head, "X-Forwarded-For: "...), client...), "\r\n\r\n"...)
		up, other := &ups[0], &ups[1]
		if floorToService(path, user) {
			up, other = other, up
		}
		out = out[:0]
		n, err := up.roundTrip(head, func(l []byte) error { out = append(out, l...); return nil })
		if err != nil {
			_, _ = c.Write([]byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			return
		}
		out = append(out, "\r\n"...)
		// The head and the body's first part go out in one write, as
		// nginx's writev sends them.
		for n > 0 || len(out) > 0 {
			if k := min(n, cap(out)-len(out)); k > 0 {
				m, err := up.br.Read(out[len(out) : len(out)+k])
				if err != nil {
					up.close()
					return
				}
				out, n = out[:len(out)+m], n-m
			}
			if n == 0 || len(out) == cap(out) {
				if _, err := c.Write(out); err != nil {
					return
				}
				out = out[:0]
			}
		}
		up.done()
		if f.shadow {
			other.mirror(head)
		}
		if clientClose {
			return
		}
	}
}

// floorHTTP is the go-nethttp floor: net/http's server, with the client
// connection's upstream connections kept in its context.
type floorHTTP struct {
	monolith, service string
	shadow            bool
}

// floorConnKey keys a client connection's floorConn in request contexts.
type floorConnKey struct{}

// floorConn is one client connection's state: net/http serves a
// connection's requests one at a time, so it needs no lock.
type floorConn struct {
	ups  [2]floorUpstream
	head []byte
	buf  []byte
}

// connContext gives each client connection its own floorConn.
func (f *floorHTTP) connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, floorConnKey{}, &floorConn{
		ups:  [2]floorUpstream{{addr: f.monolith}, {addr: f.service}},
		head: make([]byte, 0, 4<<10),
		buf:  make([]byte, 16<<10),
	})
}

// ServeHTTP forwards r on the connection's upstream connection.
func (f *floorHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fc := r.Context().Value(floorConnKey{}).(*floorConn)
	if r.ContentLength != 0 {
		http.Error(w, "request bodies: "+errFloorUnsupported.Error(), http.StatusNotImplemented)
		return
	}
	b := append(fc.head[:0], r.Method...)
	b = append(append(append(b, ' '), r.RequestURI...), " HTTP/1.1\r\nHost: "...)
	b = append(append(b, r.Host...), "\r\n"...)
	for k, vs := range r.Header {
		if k == "Connection" { // hop-by-hop: net/http's server acts on it
			continue
		}
		for _, v := range vs {
			b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
		}
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	b = append(append(append(b, "X-Forwarded-For: "...), client...), "\r\n\r\n"...)
	fc.head = b
	up, other := &fc.ups[0], &fc.ups[1]
	if floorToService([]byte(r.URL.Path), []byte(r.Header.Get("X-User-Id"))) {
		up, other = other, up
	}
	status := 0
	h := w.Header()
	n, err := up.roundTrip(b, func(l []byte) error {
		if status == 0 {
			var err error
			if len(l) < 12 {
				return fmt.Errorf("status line %q", l)
			}
			status, err = strconv.Atoi(string(l[9:12]))
			return err
		}
		k, v, _ := bytes.Cut(bytes.TrimRight(l, "\r\n"), []byte(":"))
		key := http.CanonicalHeaderKey(string(k))
		h[key] = append(h[key], string(bytes.TrimSpace(v)))
		return nil
	})
	if err != nil {
		clear(h) // whatever fields were read before the error
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(status)
	for n > 0 {
		m, err := up.br.Read(fc.buf[:min(n, len(fc.buf))])
		if err != nil {
			up.close()
			panic(http.ErrAbortHandler) // the answer is cut: so is the client's
		}
		if _, err := w.Write(fc.buf[:m]); err != nil {
			up.close()
			return
		}
		n -= m
	}
	up.done()
	if f.shadow {
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		other.mirror(fc.head)
	}
}

// runFloor serves the named floor on ln until ctx ends.
func runFloor(ctx context.Context, name string, ln net.Listener, monolith, service string, shadow bool) error {
	switch name {
	case peerGoNet:
		f := &floorNet{monolith: monolith, service: service, shadow: shadow}
		go func() { <-ctx.Done(); _ = ln.Close() }()
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			go f.serve(c)
		}
	case peerGoHTTP:
		f := &floorHTTP{monolith: monolith, service: service, shadow: shadow}
		srv := &http.Server{Handler: f, ConnContext: f.connContext, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
		go func() { <-ctx.Done(); _ = srv.Close() }()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown floor %q (want %s or %s)", name, peerGoNet, peerGoHTTP)
}

// floorMain is main for a floor process: args are the floor's name, the
// address to listen on, the monolith's and the service's addresses, and
// "shadow" to mirror every request.
func floorMain(args []string) {
	if len(args) != 4 && (len(args) != 5 || args[4] != kindShadow) {
		fmt.Fprintf(os.Stderr, "strangler-bench %s: want NAME LISTEN MONOLITH SERVICE [shadow], got %q\n", floorFlag, args)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", args[1])
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		err = runFloor(ctx, args[0], ln, args[2], args[3], len(args) == 5)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strangler-bench %s: %v\n", floorFlag, err)
		os.Exit(1)
	}
}
