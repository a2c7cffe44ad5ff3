package proxy

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A TLS service is reached through the proxy's own handshake (dialTLS):
// verified against the system's roots, the host as server name. The
// roots are read once per process, from SSL_CERT_FILE when set, so the
// check runs in a child process that trusts httptest's certificate (the
// same in every process). The child serves a GET and a POST over TLS, and
// the service sees HTTP/1.1 on a verified connection.
func TestTLSUpstreamVerifiedHandshake(t *testing.T) {
	t.Parallel()
	if os.Getenv("STRANGLER_TLS_CHILD") == "1" {
		t.Skip("the child runs tlsUpstreamChild only")
	}
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	ts.Close()
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, certFile, string(certPEM))
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSUpstreamChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "STRANGLER_TLS_CHILD=1", "SSL_CERT_FILE="+certFile, "SSL_CERT_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTLSUpstreamChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestTLSUpstreamChild is TestTLSUpstreamVerifiedHandshake's child; on its
// own it skips.
func TestTLSUpstreamChild(t *testing.T) {
	if os.Getenv("STRANGLER_TLS_CHILD") != "1" {
		t.Skip("run by TestTLSUpstreamVerifiedHandshake")
	}
	service := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Served-By", "service")
		io.WriteString(w, r.Proto+" "+r.Method+" "+string(b))
	}))
	defer service.Close()
	e := newEnv(t, fallbackConfig(service.URL, "    fallback: {on: []}\n"), flagJSON("orders-percent", 100), nil, nil)
	resp, body := e.get("/api/orders/1", "X-User-Id", "u")
	if resp.StatusCode != 200 || body != "HTTP/1.1 GET " {
		t.Fatalf("GET over TLS: %d %q", resp.StatusCode, body)
	}
	resp, body = post(e, "/api/orders/1", "pay=1")
	if resp.StatusCode != 200 || body != "HTTP/1.1 POST pay=1" {
		t.Fatalf("POST over TLS: %d %q", resp.StatusCode, body)
	}

	// The upstream guard reads a TLS upstream's plaintext: an answer with
	// both framings closes its connection, and what the upstream framed
	// otherwise never answers the next request. (Under TLS, the guard saw
	// ciphertext and stepped aside: the second request got "poisoned".)
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	hs.StartTLS()
	cfg := hs.TLS.Clone()
	hs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	const (
		ambiguous = "HTTP/1.1 200 OK\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\n"
		poison    = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\npoisoned"
	)
	s := startScriptedOn(t, ln, "https", func(n, k int, c net.Conn) bool {
		answer := ambiguous
		if k > 0 {
			answer = poison
		}
		_, err := io.WriteString(c, answer)
		return err == nil
	})
	for i, withBody := range []bool{false, true, false, true} {
		if r := s.send(t, withBody); r.status != 200 || r.body != "first" || r.header.Get("X-Poison") != "" {
			t.Errorf("request %d over TLS: %d %q (X-Poison %q), want the first answer", i, r.status, r.body, r.header.Get("X-Poison"))
		}
	}
	if n := s.conns.Load(); n != 4 {
		t.Errorf("four answers with both framings took %d TLS connections, want 4", n)
	}
}
