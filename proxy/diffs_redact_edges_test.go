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

// R4-1. Set-Cookie is in DefaultSecretHeaders, and since c32a554 every
// compile calls diffRing.setSecret with it: diffRing.add then replaces a
// Set-Cookie difference's cookie names with "[redacted]" and its
// attribute note (cookieNote: which cookie lost Secure/HttpOnly) with
// "secret header: the values differ and are not shown". The comparator
// deliberately shows Set-Cookie's names and attribute differences
// (compare/headers.go headerText/cookieNote; README: Set-Cookie is
// compared by cookie names and what a browser does with them).
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

// R4-2. sampleSide takes b[:4096+len(longest secret)], replaces whole
// secrets, and applies redactEnds only when what is left is longer than
// 4096. When earlier echoes of a long secret shrank the head below 4096
// (each 71-byte "Bearer …" becomes 10 bytes), the head's end, the start
// of a secret cut by the b[:4096+more] slice, is kept as it is.
func TestSampleBodyKeepsTokenStartAfterShrink(t *testing.T) {
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

// R4-3. A JSON value longer than 4 KiB is shown as an excerpt string of
// its compacted text (jsonValue → excerpt): JSON's escapes in it are
// escaped once more ("\/" becomes "\\/", "\"" becomes "\\\""), so neither
// the secret as sent nor its jsonForms are found in the difference, and
// the echoed credential reaches /api/diffs.
func TestExcerptedJSONValueKeepsEscapedSecret(t *testing.T) {
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

// R4-3b. The same with a quoted cookie value (RFC 6265 allows
// DQUOTE *cookie-octet DQUOTE), echoed by encoding/json: the value is
// found as `\"…\"` in a plain difference, but not in an excerpt.
func TestExcerptedJSONValueKeepsQuotedCookie(t *testing.T) {
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

// R4-4. A secret of exactly 8 bytes (README: "each value of 8 bytes or
// more …, and what an excerpt's edge leaves of one, reads [redacted]"):
// redactEnds looks at k from len(v)-1 down to minSecret (8), so for an
// 8-byte value it looks at nothing; a text body difference's excerpt that
// starts one byte into it shows 7 of its 8 bytes.
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
