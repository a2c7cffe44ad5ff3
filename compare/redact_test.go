package compare_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/compare"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/plain/path": "/plain/path",
		"https://files.example/o/7?X-Amz-Credential=AKIA&X-Amz-Signature=S": "https://files.example/o/7?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]",
		"/api/orders/7/download;jsessionid=S?token=T&flag":                  "/api/orders/7/download;jsessionid=[redacted]?token=[redacted]&[redacted]",
		"https://app.example/cb#access_token=T&state=s":                     "https://app.example/cb#access_token=[redacted]&state=[redacted]",
		"/a;v=1/b;w=2":                     "/a;v=[redacted]/b;w=[redacted]",
		"/x?ids=1,2&key=K":                 "/x?ids=[redacted]&key=[redacted]",
		"/x?q=a#frag":                      "/x?q=[redacted]#[redacted]",
		"/a?":                              "/a?",
		"/reset?sk_live_99":                "/reset?[redacted]",
		"/api/orders/7%3Bjsessionid=S?t=T": "/api/orders/7%3Bjsessionid=[redacted]?t=[redacted]",
		"/a%3bv=1%3Bw=2/b":                 "/a%3bv=[redacted]%3Bw=[redacted]/b",
		"/a%3Ctoken%3B":                    "/a%3Ctoken%3B",
		"/50%":                             "/50%",
	} {
		if got := compare.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A Location that differs only in redacted parts (a redirect to
// /login?next=/orders on one side, ?next=/ on the other) renders the same
// on both sides; a note says the difference is in what is not shown.
func TestRedactedURLDifferenceIsExplained(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{})
	res := compare.Compare(
		&compare.Response{Status: 302, Header: http.Header{"Location": {"/login?next=/orders"}}},
		&compare.Response{Status: 302, Header: http.Header{"Location": {"/login?next=/"}}}, r)
	if len(res.Differences) != 1 {
		t.Fatalf("differences %s, want one", diffsJSON(t, res.Differences))
	}
	d := res.Differences[0]
	if string(d.Primary) != `"/login?next=[redacted]"` || string(d.Shadow) != string(d.Primary) || !strings.Contains(d.Note, "redacted parts") {
		t.Errorf("difference %s: want both sides redacted alike, with a note saying so", diffsJSON(t, res.Differences))
	}
}

// A URL header listed in secret_headers keeps the secret note: its sides
// are the placeholder, so nothing says the difference is in the redacted
// parts only (here it is the host and path).
func TestSecretURLHeaderKeepsSecretNote(t *testing.T) {
	t.Parallel()
	r := mustRules(t, compare.RulesConfig{SecretHeaders: []string{"Location"}})
	res := compare.Compare(
		&compare.Response{Status: 302, Header: http.Header{"Location": {"https://a.example/orders"}}},
		&compare.Response{Status: 302, Header: http.Header{"Location": {"https://b.example/admin"}}}, r)
	if len(res.Differences) != 1 || !strings.Contains(res.Differences[0].Note, "secret header") {
		t.Errorf("differences %s: want one, with the secret-header note", diffsJSON(t, res.Differences))
	}
}
