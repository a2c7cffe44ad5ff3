package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// adminAs sends GET path to the admin listener with the given Host.
func adminAs(t *testing.T, e *env, path, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.adminURL+path, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A reload cannot move the admin listener (admin_listen takes a restart),
// so one that drops the token while it listens beyond loopback is refused:
// applied, /api/* (response samples) would have been open at once on the
// old, public address, though the new config names loopback.
func TestReloadKeepsAdminTokenWhileAdminIsPublic(t *testing.T) {
	t.Parallel()
	tok := filepath.Join(t.TempDir(), "admin-token")
	writeFile(t, tok, "s3cret-admin-token\n")
	const routes = `
monolith: {{monolith}}
flags: {file: flags.json}
routes:
  - name: orders
    path: /api/orders/*
    service: {{service}}
    sticky: header:X-User-Id
`
	e := newEnv(t, "listen: 127.0.0.1:0\nadmin_listen: 0.0.0.0:19090\nadmin_token_file: "+tok+"\n"+routes, flagJSON("orders-percent", 0), nil, nil)
	if code, _ := adminAs(t, e, "/api/routes", ""); code != 401 {
		t.Fatalf("before the reload: /api/routes without the token: %d, want 401", code)
	}
	e.rewriteConfig("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:19090\n" + routes)
	err := e.srv.ReloadFile(e.configPath())
	if err == nil || !strings.Contains(err.Error(), "admin_token_file") || !strings.Contains(err.Error(), "0.0.0.0:19090") {
		t.Errorf("reload without the token: %v; want it refused, naming admin_token_file and the running address", err)
	}
	if code, _ := adminAs(t, e, "/api/routes", ""); code != 401 {
		t.Errorf("after the reload: /api/routes without the token: %d, want 401", code)
	}
	// Rotating the token, or keeping it, still reloads.
	e.rewriteConfig("listen: 127.0.0.1:0\nadmin_listen: 0.0.0.0:19090\nadmin_token_file: " + tok + "\n" + routes)
	if err := e.srv.ReloadFile(e.configPath()); err != nil {
		t.Errorf("reload with the token: %v", err)
	}
}

// CONNECT is refused (405, connection closed) and reaches no upstream: a
// reverse proxy has no tunnel to offer, and an upstream's 2xx relayed would
// tell a front proxy that one is open while this connection goes on being
// read as requests.
func TestConnectIsRefused(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), log.backend("monolith"), log.backend("service"))
	// The request a front proxy in tunnel mode would relay next comes in
	// the same write.
	resps, closed := exchange(t, e.proxyAddr(),
		"CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n"+
			"GET /api/orders/1 HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].status != http.StatusMethodNotAllowed || resps[0].header.Get("Allow") == "" || !closed {
		t.Errorf("answers %v (closed %v); want one 405 with Allow, then the connection closed", resps, closed)
	}
	if got := append(log.requests(t, "internal.example:443", 0), log.requests(t, "x", 0)...); len(got) != 0 {
		t.Errorf("upstreams received %v", got)
	}
}

// The admin listener bounds whole requests: a client that announces a body
// and sends none (on /healthz, which needs no token) is answered or cut
// within ReadTimeout, not held for ever with a file descriptor the proxy
// listener shares.
func TestAdminBoundsUnsentBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.adminURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(45 * time.Second)) // ReadTimeout is 15 s
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Error("the admin connection was still open after 45 s: nothing bounds a request body there")
	}
}

// Without a token the admin API is on loopback, and a web page in a
// browser on the host could rebind its own name to 127.0.0.1: /api/*
// answers only a Host that is an address or localhost.
func TestAdminOnLoopbackAnswersLocalHostsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), nil, nil)
	port := e.adminURL[strings.LastIndexByte(e.adminURL, ':'):]
	for host, want := range map[string]int{
		"":                                  200, // 127.0.0.1:port
		"localhost" + port:                  200,
		"LOCALHOST":                         200,
		"[::1]" + port:                      200,
		"rebind.attacker.example" + port:    403,
		"rebind.attacker.example":           403,
		"localhost.attacker.example" + port: 403,
	} {
		if code, _ := adminAs(t, e, "/api/routes", host); code != want {
			t.Errorf("Host %q: /api/routes answered %d, want %d", host, code, want)
		}
	}
	if code, _ := adminAs(t, e, "/healthz", "rebind.attacker.example"); code != 200 {
		t.Errorf("probes answer any Host: /healthz answered %d", code)
	}
}

// A dot segment carrying a path parameter ("..;", ".;x", encoded dots) is
// refused: servlet containers and Spring drop ";" parameters before
// resolving dots, so /api/orders/..;/admin would reach the orders service
// and be read there as /api/admin, a path outside the route. A parameter
// elsewhere passes.
func TestDotSegmentWithParameterIsRefused(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 100), log.backend("monolith"), log.backend("service"))
	get := func(path string) int {
		resps, _ := exchange(t, e.proxyAddr(), "GET "+path+" HTTP/1.1\r\nHost: x\r\nX-User-Id: u\r\nConnection: close\r\n\r\n", 5*time.Second)
		if len(resps) != 1 {
			t.Fatalf("%s: %d answers", path, len(resps))
		}
		return resps[0].status
	}
	for _, p := range []string{"/api/orders/..;/admin", "/api/orders/..;jsessionid=x/admin", "/api/orders/%2e%2e;/admin", "/api/orders/.;x/7"} {
		if code := get(p); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", p, code)
		}
	}
	if code := get("/api/orders/7;v=1"); code != 200 {
		t.Errorf("a parameter on an ordinary segment: %d, want 200", code)
	}
	if got := log.requests(t, "x", 1); len(got) != 1 || got[0].backend != "service" || got[0].String() != "GET /api/orders/7;v=1" {
		t.Errorf("upstreams received %v, want only the ordinary one at the service", got)
	}
}

// URLs in the answers' Location, Content-Location, Link and Refresh are
// redacted in mismatch samples, as the request's path and query are: a
// presigned URL's signature or an OAuth code differs on every answer, so
// every such answer became a sample holding the live credential.
func TestSamplesRedactURLs(t *testing.T) {
	t.Parallel()
	mono := answer(302, "", "Location", "https://files.example/o/7?X-Amz-Credential=AKIA&X-Amz-Signature=MONO-SECRET",
		"Link", `<https://api.example/x?page=2&key=MONO-LINK-SECRET>; rel="next"`)
	svc := answer(302, "", "Location", "https://files.example/o/7?X-Amz-Credential=AKIA&X-Amz-Signature=SVC-SECRET",
		"Link", `<https://api.example/x?page=2&key=SVC-LINK-SECRET>; rel="next"`)
	e := newEnv(t, shadowConfig("      percent: 100\n"), flagJSON("orders-percent", 0), mono, svc)
	req, _ := http.NewRequest("GET", e.proxyURL+"/api/orders/7/download;jsessionid=PATH-SECRET?token=QUERY-SECRET", nil)
	req.Header.Set("X-User-Id", "u")
	resp, err := http.DefaultTransport.RoundTrip(req) // not following the redirect
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := e.comparisons(1); got["mismatch"] != 1 {
		t.Fatalf("comparisons %v, want a mismatch", got)
	}
	_, body := e.adminGet("/api/diffs")
	if strings.Contains(body, "SECRET") {
		t.Errorf("/api/diffs shows a credential:\n%s", body)
	}
	for _, want := range []string{`X-Amz-Signature=[redacted]`, `jsessionid=[redacted]`, `token=[redacted]`, `rel=\"next\"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/api/diffs lacks %s (names are kept):\n%s", want, body)
		}
	}
}

// A TLS record error after the handshake comes on a request already sent:
// it is not a connect failure, and a POST the service received is not
// replayed to the monolith. Handshake failures come as dial errors
// (dialTLS). Runs in a child process that trusts httptest's certificate.
func TestTLSRecordErrorAfterHandshakeIsNotReplayed(t *testing.T) {
	if os.Getenv("STRANGLER_TEST_TLS_RECORD_CHILD") == "1" {
		tlsRecordChild(t)
		return
	}
	t.Parallel()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	ts.Close()
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, certFile, string(certPEM))
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSRecordErrorAfterHandshakeIsNotReplayed$", "-test.v")
	cmd.Env = append(os.Environ(), "STRANGLER_TEST_TLS_RECORD_CHILD=1", "SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTLSRecordErrorAfterHandshakeIsNotReplayed") {
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.Contains(l, `"level"`) {
				lines = append(lines, l)
			}
		}
		t.Errorf("child: %v\n%s", err, strings.Join(lines, "\n"))
	}
}

func tlsRecordChild(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	ts.Close()
	ln := listen(t)
	defer ln.Close()
	var svcPosts atomic.Int32
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer raw.Close()
				tc := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
				if tc.HandshakeContext(context.Background()) != nil {
					return
				}
				req, err := http.ReadRequest(bufio.NewReader(tc))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				if req.Method == "POST" {
					svcPosts.Add(1)
				}
				// A record header the client refuses (oversized length):
				// tls.RecordHeaderError on its read of the answer.
				raw.Write([]byte{0x17, 0x03, 0x03, 0xff, 0xff})
				time.Sleep(100 * time.Millisecond)
			}()
		}
	}()
	var mono atomic.Int32
	e := newEnv(t, fallbackConfig("https://"+ln.Addr().String(), ""), flagJSON("orders-percent", 100), bodyEcho(&mono), nil)
	resp, _ := post(e, "/api/orders/1", `{"pay":100}`)
	if svcPosts.Load() != 1 || mono.Load() != 0 || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("client got %d; the service processed %d POSTs, the monolith %d; want 502, 1 and 0 (no replay)", resp.StatusCode, svcPosts.Load(), mono.Load())
	}
}
