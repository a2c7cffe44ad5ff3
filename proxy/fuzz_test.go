package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzStickyKey checks the sticky-key extraction on arbitrary requests:
// it never panics, is deterministic, takes the header, cookie or query
// value when there is one, and otherwise falls back to a client address
// that is the peer or an untrusted X-Forwarded-For hop.
// inXFF reports whether ip is one of xff's hops, as written or as the
// address it writes (clientIP keys 0::01 as ::1: one user, however the
// proxy in front spells the address).
func inXFF(ip, xff string) bool {
	for _, hop := range strings.Split(xff, ",") {
		hop = strings.TrimSpace(hop)
		if hop == ip {
			return true
		}
		if a, ok := parseHop(hop); ok && canonicalAddr(hop, a) == ip {
			return true
		}
	}
	return false
}

func FuzzStickyKey(f *testing.F) {
	f.Add(uint8(0), "X-User-Id", "user-7", "", "", "192.0.2.1:1234", "", "")
	f.Add(uint8(1), "sid", "", "a=1; sid=\"abc\"; b=2", "", "[2001:db8::1]:443", "", "")
	f.Add(uint8(2), "u", "", "", "u=caf%C3%A9&u=2;x=%zz", "10.0.0.1:1", "", "")
	f.Add(uint8(3), "", "", "", "", "10.0.0.1:1", "203.0.113.9, 10.0.0.2,10.0.0.3 ,", "10.0.0.0/8")
	f.Add(uint8(3), "", "", "", "", "10.0.0.1:1", " , ,", "10.0.0.0/8,::1")
	f.Add(uint8(4), "", "", "", "", "not an address", "1.1.1.1", "0.0.0.0/0")
	f.Fuzz(func(t *testing.T, kind uint8, name, header, cookie, query, remote, xff, trusted string) {
		kinds := []string{stickyHeader, stickyCookie, stickyQuery, stickyIP, stickyRandom}
		st := sticky{kind: kinds[int(kind)%len(kinds)], name: name}
		if st.kind == stickyHeader {
			st.name = http.CanonicalHeaderKey(name)
		}
		var prefixes []netip.Prefix
		for _, c := range strings.Split(trusted, ",") {
			if p, err := parsePrefix(strings.TrimSpace(c)); err == nil {
				prefixes = append(prefixes, p)
			}
		}
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: query}, RemoteAddr: remote}
		if header != "" {
			r.Header[st.name] = []string{header}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{cookie}
		}
		if xff != "" {
			r.Header["X-Forwarded-For"] = []string{xff}
		}

		ip := clientIP(r, prefixes)
		if ip != clientIP(r, prefixes) {
			t.Fatal("clientIP not deterministic")
		}
		peer := peerIP(remote)
		switch {
		case ip == peer:
		case !isTrusted(peer, prefixes):
			t.Fatalf("untrusted peer %q, but client %q", peer, ip)
		case ip == "" || ip != strings.TrimSpace(ip) || strings.Contains(ip, ","):
			t.Fatalf("client %q is not one hop", ip)
		case isTrusted(ip, prefixes):
			t.Fatalf("client %q is a trusted proxy", ip)
		case !inXFF(ip, xff):
			t.Fatalf("client %q is not in X-Forwarded-For %q", ip, xff)
		}

		key := st.key(r, prefixes)
		if key != st.key(r, prefixes) {
			t.Fatal("key not deterministic")
		}
		switch {
		case st.kind == stickyHeader && header != "":
			if key != header {
				t.Fatalf("header key %q, want %q", key, header)
			}
		case st.kind == stickyCookie && key != ip:
			if !strings.Contains(cookie, name+"=") || !strings.Contains(cookie, key) {
				t.Fatalf("cookie key %q not in %q", key, cookie)
			}
		case st.kind == stickyQuery && key != ip:
			if key == "" {
				t.Fatal("empty query key")
			}
		case st.kind == stickyIP || st.kind == stickyRandom || key == "":
			if key != ip {
				t.Fatalf("key %q, want the client address %q", key, ip)
			}
		}
		if b := bucket(routeSeed("orders"), key); b >= Buckets {
			t.Fatalf("bucket %d", b)
		}
	})
}

// routingConfig has patterns of every kind chi offers, overlapping.
const routingConfig = `
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - {name: orders, path: /api/orders/*, service: "{{service}}"}
  - {name: orders-get, path: /api/orders/special/*, methods: [GET], service: "{{service}}"}
  - {name: user, path: "/users/{id}", service: "{{service}}"}
  - {name: user-items, path: "/users/{id}/items/*", methods: [POST], service: "{{service}}"}
  - {name: admin, path: /api/admin, service: "{{service}}"}
`

// FuzzNormalizeAndMatch checks that the path a request is routed on is the
// path the upstream receives: after normalization no dot segment is left
// (literal or encoded), Path and RawPath agree, normalizing again changes
// nothing, the query is untouched, and the request the upstream receives,
// if it came to the proxy, would be routed the same way.
func FuzzNormalizeAndMatch(f *testing.F) {
	e := newEnv(f, routingConfig, flagJSON(), nil, nil)
	tbl := e.srv.table.Load()
	for _, s := range []string{
		"/api/orders/7", "/api/orders/../admin", "/api/orders/../../admin", "/api/orders/%2e%2e/admin",
		"/api/orders/%2E./admin?x=1;y=2", "/api/orders/a%2Fb", "/api/orders%2F..%2Fadmin", "/users/5/items/../x",
		"/users/%2e%2e/users/1", "/a//../b/./c/.", "/api/orders/special/%2e/x", "http://h/api/orders/../admin?q=..",
		"/caf%C3%A9/%2e%2e/api/admin", "/api/orders/7?%2e%2e=../", "*", "/%", "/api/%6Frders/7", "/%2E%2E%2f%61",
	} {
		f.Add(uint8(0), s)
	}
	methods := []string{"GET", "POST", "DELETE", "PROPFIND"}
	f.Fuzz(func(t *testing.T, m uint8, target string) {
		method := methods[int(m)%len(methods)]
		r := readRequest(method, target)
		if r == nil {
			return // net/http would not serve it
		}
		query := r.URL.RawQuery
		original := r.URL.EscapedPath()
		normalizePath(r.URL)
		u := r.URL
		routed := u.RawPath
		if routed == "" {
			routed = u.Path
		}
		if strings.HasPrefix(routed, "/") && hasDotSegment(routed, u.RawPath != "") {
			t.Fatalf("%q routed as %q, which has a dot segment", target, routed)
		}
		if u.RawPath != "" {
			if p, err := url.PathUnescape(u.RawPath); err != nil || p != u.Path {
				t.Fatalf("%q: RawPath %q does not decode to Path %q", target, u.RawPath, u.Path)
			}
		}
		if u.RawQuery != query {
			t.Fatalf("%q: query %q became %q", target, query, u.RawQuery)
		}
		// Without dot segments, only escaped unreserved characters change.
		if dec, _ := decodeUnreserved(original); !hasDotSegment(dec, true) && u.EscapedPath() != dec {
			t.Fatalf("%q: path without dot segments changed from %q to %q", target, original, u.EscapedPath())
		}
		again := *u
		normalizePath(&again)
		if again.Path != u.Path || again.RawPath != u.RawPath {
			t.Fatalf("%q: normalizing twice gives %q, then %q", target, u.EscapedPath(), again.EscapedPath())
		}
		rt := tbl.match(r)

		// What the upstream receives (the monolith and services have no
		// path prefix here, so ReverseProxy sends the path as it is).
		sent := u.EscapedPath()
		if u.RawQuery != "" || u.ForceQuery {
			sent += "?" + u.RawQuery
		}
		if !strings.HasPrefix(sent, "/") {
			return // "*" and the like: nothing is routed on them
		}
		fwd := readRequest(method, sent)
		if fwd == nil {
			t.Fatalf("%q is forwarded as %q, which net/http cannot read", target, sent)
		}
		normalizePath(fwd.URL)
		if fwd.URL.EscapedPath() != u.EscapedPath() {
			t.Fatalf("%q forwarded as %q, which routes as %q", target, sent, fwd.URL.EscapedPath())
		}
		if got := tbl.match(fwd); got != rt {
			t.Fatalf("%q routes to %s, but the %q the upstream receives routes to %s", target, rt.name, sent, got.name)
		}
	})
}

func readRequest(method, target string) *http.Request {
	if strings.ContainsAny(target, " \r\n") || target == "" {
		return nil
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
	if err != nil {
		return nil
	}
	return r
}

// FuzzGuardAgreesWithNetHTTP feeds arbitrary bytes, in arbitrary pieces,
// to a connection guard and reads what it lets through with net/http's
// own request parser. Every request net/http reads must be one whose head
// the guard saw (same request-target, in order), so admit can judge it;
// after a head the guard refused, net/http must read nothing more. This is
// the property that makes request smuggling through the proxy impossible:
// the guard and net/http never disagree about where a request starts.
func FuzzGuardAgreesWithNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\nHost: x\n\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x00b\r\nhello\r\n0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		g := &guardConn{Conn: a, f: framer{maxHead: 64 << 10}}
		var delivered []byte
		size := int(piece%64) + 1
		for off := 0; off < len(data) && !g.cut; off += size {
			chunk := data[off:min(off+size, len(data))]
			k, cut := g.follow(chunk)
			delivered = append(delivered, chunk[:k]...)
			g.cut = cut
		}
		// The guard stopped following (after an upgrade, or a head larger
		// than net/http accepts), or more heads came than it queues (never
		// through net/http, which reads 4 KiB ahead at most): admit
		// refuses the requests it has no verdict for.
		unfollowed := g.f.state == fsLost && !g.cut || g.delivered > maxPipelined
		br := bufio.NewReader(bytes.NewReader(delivered))
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			v := g.pop(r.RequestURI)
			if g.desync || v.reason == reasonUnframed && !unfollowed {
				t.Fatalf("net/http read %s %q, which the guard did not frame (delivered %q)", r.Method, r.RequestURI, delivered)
			}
			if v.reason != reasonOK {
				// Refused by admit, which closes the connection. Where the
				// guard cut the stream, net/http has nothing more to read.
				io.Copy(io.Discard, r.Body)
				if r2, err := http.ReadRequest(br); err == nil && g.cut {
					t.Fatalf("after a refused head, net/http read %s %q (delivered %q)", r2.Method, r2.RequestURI, delivered)
				}
				return
			}
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				return // a body net/http cannot read ends the connection
			}
		}
	})
}
