package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// echoEnv: monolith and service both run handler h; the service adds a
// header so every request mismatches and leaves a sample.
func echoEnv(t *testing.T, h http.Handler, top ...string) *env {
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Service", "v2")
		h.ServeHTTP(w, r)
	})
	return newEnv(t, binConfig("{percent: 100}", top...), flagJSON("bin-percent", 0), h, service)
}

func (e *env) sampleBody(t *testing.T, req *http.Request) string {
	t.Helper()
	if resp, _ := e.do(req); resp.StatusCode != 200 {
		t.Fatalf("client got %d", resp.StatusCode)
	}
	if got := e.comparisonsOf("bin", 1); got["mismatch"] != 1 {
		t.Fatalf("comparisons %v, want a mismatch", got)
	}
	_, body := e.adminGet("/api/diffs?route=bin")
	return body
}

// A Go debugging endpoint that echoes its headers with encoding/json
// (json.Marshal escapes & < > as \u0026...): a cookie value with an '&'
// (ASP.NET's "a=1&b=2" style values) is kept whole.
func TestSampleRedactsJSONEscapedEchoes(t *testing.T) {
	t.Parallel()
	e := echoEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]any{"headers": r.Header})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	const secretA, secretB = "uid=12345678", "tok=abcdefghijklmnop"
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Cookie", "auth="+secretA+"&"+secretB)
	body := e.sampleBody(t, req)
	if strings.Contains(body, "abcdefghijklmnop") {
		t.Errorf("the sample shows the cookie's token (JSON-escaped '&' around it):\n%s", body)
	}
}

// PHP's json_encode writes '/' as "\/": a Basic credential (standard
// base64, which has '/' and '+') echoed by a PHP monolith is not found.
func TestSampleRedactsSlashEscapedEchoes(t *testing.T) {
	t.Parallel()
	e := echoEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := strings.ReplaceAll(r.Header.Get("Authorization"), "/", `\/`)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"authorization":"`+v+`"}`)
	}))
	const cred = "YWxhZGRpbjpvcGVu/2VzYW1lLXNlc2FtZQ=="
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Authorization", "Basic "+cred)
	body := e.sampleBody(t, req)
	var samples []DiffSample
	if err := json.Unmarshal([]byte(body), &samples); err != nil || len(samples) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	if b := samples[0].Primary.Body; strings.Contains(b, "YWxhZGRpbjpvcGVu") {
		t.Errorf("the sample's body shows the Basic credential: %s", b)
	}
}

// A token that straddles the 4 KiB body excerpt's end: the excerpt is cut
// first and redacted after, so the token's start (all but a few bytes)
// stays in the sample.
func TestSampleRedactsATokenCutByTheExcerpt(t *testing.T) {
	t.Parallel()
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	prefix := `{"pad":"`
	e := echoEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		// The token starts 60 bytes before the excerpt's end.
		pad := strings.Repeat("x", sampleBodyBytes-60-len(prefix)-len(`","token":"`))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, prefix+pad+`","token":"`+tok+`"}`)
	}))
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	body := e.sampleBody(t, req)
	if strings.Contains(body, token[:50]) {
		t.Errorf("the sample shows the first 50 of the token's %d bytes (cut at the excerpt's end)", len(token))
	}
}

// A comparison in flight while a reload makes a header secret: it is
// compared under the old rules and its sample is added after Reload's
// redaction pass, so /api/diffs shows the header's values after the
// reload that made it secret returned.
func TestSecretAddedWhileAComparisonRuns(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	service := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
		w.Header().Set("X-Api-Key", "service-key-456")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"a":1}`)
	})
	cfg := shadowConfig("      percent: 100\n      timeout: 30s\n")
	e := newEnv(t, cfg, flagJSON("orders-percent", 0),
		answer(200, `{"a":1}`, "X-Api-Key", "monolith-key-123"), service)
	e.get("/api/orders/1", "X-User-Id", "u") // to the monolith; the copy to the service waits
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the shadow copy never reached the service")
	}
	e.rewriteConfig("secret_headers: [x-api-key]\n" + cfg)
	err := e.srv.ReloadFile(e.configPath())
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.comparisons(1); got["mismatch"] != 1 {
		t.Fatalf("comparisons %v, want a mismatch", got)
	}
	if _, body := e.adminGet("/api/diffs?route=orders"); strings.Contains(body, "key-123") || strings.Contains(body, "key-456") {
		t.Errorf("after the reload that made X-Api-Key secret returned, /api/diffs shows its values:\n%s", body)
	}
}
