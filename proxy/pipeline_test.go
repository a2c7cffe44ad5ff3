package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A client may pipeline as many requests as it likes: each is answered,
// in order, as nginx, HAProxy and Envoy do. The guard used to queue 16
// verdicts and answer the 17th 400.
func TestDeepPipelining(t *testing.T) {
	t.Parallel()
	var log upstreamLog
	e := newEnv(t, basicConfig, flagJSON("orders-percent", 0), log.backend("monolith"), log.backend("service"))
	cases := []struct {
		name string
		n    int
		head string // %d is the request's number, %s the Host
		bad  bool   // a smuggling attempt follows the last request
	}{
		{"17", 17, "GET /p/%d HTTP/1.1\r\nHost: %s\r\n\r\n", false},
		// Short heads: more of them than fit in the inline queue arrive
		// in each of net/http's 4 KiB reads.
		{"400 short", 400, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", false},
		{"60 with bodies", 60, "POST /p/%d HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello", false},
		{"40 then CL.TE", 40, "GET /p/%d HTTP/1.1\r\nHost: %s\r\n\r\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			host := "pipe-" + strings.ReplaceAll(c.name, " ", "-")
			var raw strings.Builder
			var wantUp []string
			for i := range c.n {
				head := fmt.Sprintf(c.head, i, host)
				raw.WriteString(head)
				f := strings.Fields(head)
				wantUp = append(wantUp, f[0]+" "+f[1])
			}
			wantStatus := slices.Repeat([]int{200}, c.n)
			if c.bad {
				raw.WriteString("POST /x HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
				wantStatus = append(wantStatus, 400)
			} else {
				raw.WriteString("GET /last HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")
				wantStatus = append(wantStatus, 200)
				wantUp = append(wantUp, "GET /last")
			}
			resps, closed := exchange(t, e.proxyAddr(), raw.String(), 10*time.Second)
			if got := statuses(resps); !slices.Equal(got, wantStatus) {
				t.Errorf("%d answers, the last %v; want %d, the last %d", len(got), got[max(0, len(got)-2):], len(wantStatus), wantStatus[len(wantStatus)-1])
			}
			if !closed {
				t.Errorf("connection left open")
			}
			for i, r := range resps[:min(len(resps), c.n)] {
				// The backend echoes what it received: answers are in order.
				if want := fmt.Sprintf("%s %d", wantUp[i], strings.Count(c.head, "hello")*5); r.body != want {
					t.Errorf("answer %d is %q, want %q", i, r.body, want)
					break
				}
			}
			var got []string
			for _, s := range log.requests(t, host, len(wantUp)) {
				got = append(got, s.String())
			}
			if !slices.Equal(got, wantUp) {
				t.Errorf("upstream received %d requests, want %d: %q", len(got), len(wantUp), got)
			}
		})
	}
}
