package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// samplesOf polls /api/diffs?route=route until it holds n samples (30 s
// deadline: a shared, slow machine) and returns them with the raw body.
func (e *env) samplesOf(t *testing.T, route string, n int) ([]DiffSample, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := e.adminGet("/api/diffs?route=" + route)
		var out []DiffSample
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatalf("/api/diffs is not JSON: %v\n%s", err, body)
			}
		}
		if len(out) >= n {
			return out, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/diffs: %d %s; want %d samples", code, body, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Set-Cookie is a secret header, but its difference shows only cookie
// names and the attribute note (which cookie lost Secure or HttpOnly),
// never values (compare/headers.go): the ring's redaction of secret
// headers must leave it as the comparator wrote it, or the operator loses
// which cookie differs.
func TestSetCookieSampleKeepsNamesAndAttributeNote(t *testing.T) {
	t.Parallel()
	cfg := shadowConfig("      percent: 100\n")
	e := newEnv(t, cfg, flagJSON("orders-percent", 0),
		answer(200, `{"a":1}`, "Set-Cookie", "sid=abc123; Path=/; Secure; HttpOnly"),
		answer(200, `{"a":1}`, "Set-Cookie", "sid=abc123; Path=/"))
	e.get("/api/orders/1", "X-User-Id", "u")
	samples, body := e.samplesOf(t, "orders", 1)
	var found bool
	for _, d := range samples[0].Differences {
		if d.Header != "Set-Cookie" {
			continue
		}
		found = true
		if string(d.Primary) == `"[redacted]"` || !strings.Contains(d.Note, "Secure") {
			t.Errorf("the Set-Cookie difference lost its cookie names and attribute note: primary %s shadow %s note %q", d.Primary, d.Shadow, d.Note)
		}
	}
	if !found {
		t.Fatalf("no Set-Cookie difference: %s", body)
	}
}

// A body excerpt is cut after whole secrets are redacted; earlier echoes
// of a long secret shrink the excerpt (each 71-byte "Bearer …" becomes
// 10 bytes), and the secret the cut splits must still have its start
// redacted at the excerpt's end.
func TestSampleBodyRedactsTokenStartAfterShrink(t *testing.T) {
	t.Parallel()
	const token = "tok0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" // 66 bytes
	e := echoEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		more := len(auth) // the longest secret
		head := auth + "\n" + auth + "\n"
		// The third echo starts 40 bytes before b[:4096+more] ends.
		pad := strings.Repeat("x", sampleBodyBytes+more-40-len(head))
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, head+pad+token+"\nend\n")
	}))
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	body := e.sampleBody(t, req)
	if strings.Contains(body, token[:40]) {
		t.Errorf("the sample's body shows the first 40 of the token's %d bytes", len(token))
	}
}

// A JSON value longer than 4 KiB is shown as an excerpt string of its
// compacted text, so JSON's escapes in it are escaped once more ("\/"
// becomes "\\/"): a secret echoed there must be found in that form too.
func TestExcerptedJSONValueRedactsEscapedSecret(t *testing.T) {
	t.Parallel()
	const cred = "YWxhZGRpbjpvcGVu/2VzYW1lLXNlc2FtZQ=="
	e := newEnv(t, binConfig("{percent: 100}"), flagJSON("bin-percent", 0),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A PHP echo endpoint: '/' written as "\/".
			v := strings.ReplaceAll(r.Header.Get("Authorization"), "/", `\/`)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"req":{"authorization":"`+v+`","pad":"`+strings.Repeat("p", 5000)+`"}}`)
		}),
		answer(200, `{"other":1}`))
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Authorization", "Basic "+cred)
	e.do(req)
	samples, _ := e.samplesOf(t, "bin", 1)
	for _, d := range samples[0].Differences {
		if strings.Contains(string(d.Primary), "YWxhZGRpbjpvcGVu") || strings.Contains(string(d.Primary), "2VzYW1lLXNlc2FtZQ") {
			t.Errorf("difference %s shows the Basic credential: %s", d.Pointer, d.Primary)
		}
	}
}

// The same with a quoted cookie value (RFC 6265 allows DQUOTE
// *cookie-octet DQUOTE), echoed by encoding/json and then excerpted:
// escaped twice.
func TestExcerptedJSONValueRedactsQuotedCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, binConfig("{percent: 100}"), flagJSON("bin-percent", 0),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := json.Marshal(map[string]any{"req": map[string]any{"cookie": r.Header.Get("Cookie"), "pad": strings.Repeat("p", 5000)}})
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}),
		answer(200, `{"other":1}`))
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Cookie", `sid="s3cr3tSessionValue42"`)
	e.do(req)
	samples, _ := e.samplesOf(t, "bin", 1)
	for _, d := range samples[0].Differences {
		if strings.Contains(string(d.Primary), "s3cr3tSessionValue42") {
			t.Errorf("difference %s shows the session cookie: %s", d.Pointer, d.Primary)
		}
	}
}

// A secret of exactly 8 bytes, the shortest looked for (README: "each
// value of 8 bytes or more …, and what an excerpt's edge leaves of one (4
// bytes or more), reads [redacted]"): an excerpt that starts one byte
// into it must not show the other 7.
func TestExcerptEdgeOfAnEightByteSecret(t *testing.T) {
	t.Parallel()
	const secret = "Zq7Kp2Wx" // 8 bytes: a cookie's value
	const p = 100             // where the echo starts
	page := func(r *http.Request, tail string) string {
		_, v, _ := strings.Cut(r.Header.Get("Cookie"), "=")
		s := strings.Repeat("a", p) + v + strings.Repeat("b", 25) // the bodies differ from p+33 on
		return s + tail
	}
	e := newEnv(t, binConfig("{percent: 100}"), flagJSON("bin-percent", 0),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, page(r, "MONOLITH"))
		}),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, page(r, "SERVICE!"))
		}))
	req, _ := http.NewRequest("GET", e.proxyURL+"/echo", nil)
	req.Header.Set("Cookie", "c="+secret)
	e.do(req)
	samples, body := e.samplesOf(t, "bin", 1)
	if strings.Contains(body, secret) {
		t.Fatalf("the whole secret is shown: %s", body)
	}
	for _, d := range samples[0].Differences {
		if strings.Contains(string(d.Primary), secret[1:]) {
			t.Errorf("difference %q (%s) shows %d of the secret's 8 bytes: %s", d.Pointer, d.Note, len(secret)-1, d.Primary)
		}
	}
}
