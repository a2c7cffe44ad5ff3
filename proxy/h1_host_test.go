package proxy

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// An upstream named by an internationalized domain name
// (http://bücher.example:8080) or by an IPv6 address with a zone
// (http://[fe80::1%25eth0]:8080), both of which the config takes, gets the
// Host net/http writes: in ASCII (punycode), and without the zone, which
// is only meaningful on this machine. h1Transport wrote the Host as it
// was: it refused the IDN as an "invalid Host header" (every body-less
// request to that upstream a 502, while requests with a body, sent by
// net/http, worked) and sent the zone to the upstream. Its pool dials the
// ASCII name, as net/http does. (Found by the mutation test of h1.go.)
func TestH1HostAsNetHTTPWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, url, want string }{
		{"IDN", "http://bücher.example:8080/", "Host: xn--bcher-kva.example:8080\r\n"},
		{"IPv6 zone", "http://[fe80::1%25eth0]:8080/", "Host: [fe80::1]:8080\r\n"},
	} {
		for _, std := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", net/http", false: ", h1Transport"}[std]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				u := startCanned(t, always(okResponse, false))
				tr := newH1(t, testTimeouts)
				// Every address is the test's upstream: no DNS, no interface.
				var d net.Dialer
				toUpstream := func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, u.addr)
				}
				tr.dial, tr.std.DialContext = toUpstream, toUpstream
				var rt http.RoundTripper = tr
				if std {
					rt = tr.std
				}
				f := fetch(rt, newRequest(t, t.Context(), http.MethodGet, tc.url))
				heads, _ := u.recorded()
				if f.err != nil || len(heads) != 1 || !strings.Contains(heads[0], tc.want) {
					t.Fatalf("error %v, upstream read %q; want %q", f.err, heads, tc.want)
				}
			})
		}
	}
}

func TestH1PoolDialsTheASCIIName(t *testing.T) {
	t.Parallel()
	tr := newH1(t, testTimeouts)
	for host, want := range map[string]string{
		"bücher.example:8080": "xn--bcher-kva.example:8080",
		"bücher.example":      "xn--bcher-kva.example:80",
		"[fe80::1%eth0]:8080": "[fe80::1%eth0]:8080", // dialled with its zone
		"example.com":         "example.com:80",
		"127.0.0.1:9":         "127.0.0.1:9",
	} {
		if got := tr.pool(host).addr; got != want {
			t.Errorf("pool(%q) dials %q, want %q", host, got, want)
		}
	}
}
