package compare_test

import (
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
		"/a;v=1/b;w=2":      "/a;v=[redacted]/b;w=[redacted]",
		"/x?ids=1,2&key=K":  "/x?ids=[redacted]&key=[redacted]",
		"/x?q=a#frag":       "/x?q=[redacted]#[redacted]",
		"/a?":               "/a?",
		"/reset?sk_live_99": "/reset?[redacted]",
	} {
		if got := compare.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
