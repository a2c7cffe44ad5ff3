package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// TestSamplesDoNotKeepEchoedSecrets: a service that echoes its request
// (httpbin's /headers, a debugging endpoint) puts the client's
// Authorization and cookies in its body; a mismatch sample keeps the
// body's start and the differing values, which must not show them.
func TestSamplesDoNotKeepEchoedSecrets(t *testing.T) {
	t.Parallel()
	e := echoEnv(t, httpbin.New(), "secret_headers: [X-Api-Key]") // the service adds a header
	secrets := []string{"s3cr3t-bearer-token", "session-id-0123456789", "key-abcdefghij"}
	req, _ := http.NewRequest("GET", e.proxyURL+"/headers", nil)
	req.Header.Set("Authorization", "Bearer "+secrets[0])
	req.Header.Set("Cookie", "lang=en; sid="+secrets[1])
	req.Header.Set("X-Api-Key", secrets[2])
	if resp, _ := e.do(req); resp.StatusCode != 200 {
		t.Fatalf("client got %d", resp.StatusCode)
	}
	if got := e.comparisonsOf("bin", 1); got["mismatch"] != 1 {
		t.Fatalf("comparisons %v, want a mismatch", got)
	}
	_, body := e.adminGet("/api/diffs?route=bin")
	if !json.Valid([]byte(body)) || !strings.Contains(body, "X-Service") {
		t.Fatalf("/api/diffs: %s", body)
	}
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("the sample shows the secret %q:\n%s", s, body)
		}
	}
	if !strings.Contains(body, "[redacted]") || !strings.Contains(body, "Accept-Encoding") {
		t.Errorf("want the secrets replaced, the rest kept:\n%s", body)
	}
}

// A secret the echo shows as a number (no string to cut it out of) takes
// the whole value with it, and the value stays valid JSON.
func TestRedactedEchoStaysJSON(t *testing.T) {
	t.Parallel()
	got := replaceRaw(json.RawMessage(`{"n":123456789012,"s":"a 123456789012 b"}`), "123456789012")
	if !json.Valid(got) || bytes.Contains(got, []byte("123456789012")) {
		t.Errorf("%s: want valid JSON without the secret", got)
	}
}
