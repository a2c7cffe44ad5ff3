package proxy

import (
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strings"
)

// Buckets is how finely the split divides keys: a route sends a key to the
// service when the key's bucket is below percent × 100, so percentages are
// honoured to two decimals (0.01 %).
const Buckets = 10000

// sticky says where a route finds the key that holds a user on one side.
type sticky struct {
	kind string // header, cookie, query, ip, random
	name string // canonical header name, cookie name or query parameter
}

func newSticky(s string) sticky {
	kind, name, _ := parseSticky(s) // validated already
	if kind == stickyHeader {
		name = textproto.CanonicalMIMEHeaderKey(name)
	}
	return sticky{kind: kind, name: name}
}

// key returns the request's sticky key. A request without one (no header,
// cookie or parameter) falls back to the client's address, so it is still
// held on one side. It allocates only where the value needs unescaping.
func (s sticky) key(r *http.Request, trusted []netip.Prefix) string {
	var k string
	switch s.kind {
	case stickyHeader:
		if v := r.Header[s.name]; len(v) > 0 {
			k = v[0]
		}
	case stickyCookie:
		k = cookieValue(r.Header["Cookie"], s.name)
	case stickyQuery:
		k = queryValue(r.URL.RawQuery, s.name)
	}
	if k != "" {
		return k
	}
	return clientIP(r, trusted)
}

// cookieValue finds one cookie without parsing them all: r.Cookie builds
// every cookie of the header on every request, which the hot path avoids.
func cookieValue(lines []string, name string) string {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, v, ok := strings.Cut(part, "=")
			if ok && n == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v
			}
		}
	}
	return ""
}

// queryValue finds one query parameter without building url.Values.
func queryValue(raw, name string) string {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		n, v, _ := strings.Cut(pair, "=")
		if n != name {
			if !strings.ContainsAny(n, "%+") {
				continue
			}
			if un, err := url.QueryUnescape(n); err != nil || un != name {
				continue
			}
		}
		if un, err := url.QueryUnescape(v); err == nil {
			return un
		}
		return v
	}
	return ""
}

// clientIP is the address of the client as far as it can be believed: the
// connection's peer, or, when the peer is a trusted proxy, the right-most
// X-Forwarded-For address that is not itself a trusted proxy (left-most
// entries can be written by anyone).
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer := peerIP(r.RemoteAddr)
	if len(trusted) == 0 || !isTrusted(peer, trusted) {
		return peer
	}
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		line := xff[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				hop, line = strings.TrimSpace(line[j+1:]), line[:j]
			} else {
				hop, line = strings.TrimSpace(line), ""
			}
			if hop == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				return hop // not an address: the key is what was written
			}
			if !addrTrusted(a, trusted) {
				return canonicalAddr(hop, a)
			}
		}
	}
	return peer
}

// parseHop reads one X-Forwarded-For entry: an address, or an address and
// port as some proxies write them ("203.0.113.7:50001", "[2001:db8::1]:443"),
// or an IPv6 address in brackets without one.
func parseHop(hop string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(hop); err == nil {
		return a.Unmap(), true
	}
	if n := len(hop); n > 2 && hop[0] == '[' && hop[n-1] == ']' { // "[2001:db8::1]", no port
		if a, err := netip.ParseAddr(hop[1 : n-1]); err == nil {
			return a.Unmap(), true
		}
	}
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// canonicalAddr is a's canonical text, the sticky key of one client
// however its address was written (with a port, "2001:DB8:0::1",
// "::ffff:203.0.113.7"); hop itself when it is already that text, which
// spares an allocation.
func canonicalAddr(hop string, a netip.Addr) string {
	var buf [64]byte
	c := a.AppendTo(buf[:0])
	if string(c) == hop {
		return hop
	}
	return string(c)
}

func peerIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

func isTrusted(ip string, trusted []netip.Prefix) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return addrTrusted(a.Unmap(), trusted)
}

func addrTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// bucket places a key in 0..Buckets-1. The route's name is hashed in, so a
// user at the edge of one route's percentage is not at the edge of every
// route's: ramps of different routes reach different users first.
//
// FNV-1a, then a 64-bit finalizer (from SplitMix64): FNV alone leaves the
// low bits that the modulo keeps poorly mixed for short, similar keys
// (user-1, user-2, ...). Hand-written because it must not allocate and
// must never change: a change of hash moves every user across the split.
func bucket(seed uint64, key string) uint32 {
	h := seed
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return uint32(h % Buckets)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// routeSeed is the FNV-1a state after the route's name and a separator
// byte, so that bucket needs only hash the key per request.
func routeSeed(route string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(route); i++ {
		h ^= uint64(route[i])
		h *= fnvPrime
	}
	h ^= 0 // separator: "ab"+"c" and "a"+"bc" hash apart
	h *= fnvPrime
	return h
}

// toService decides one request's side. bucket < percent×100 is the whole
// rule: it makes the split sticky (same key, same bucket) and monotonic
// (raising the percentage only adds buckets to the service side).
//
// percent×100 is rounded to a whole bucket: in floating point it can land
// just above one (0.07×100 = 7.000000000000001), which gave one bucket too
// many at 573 of the 10,001 two-decimal percentages. Rounding is monotonic,
// so the split still is.
func toService(b uint32, percent float64) bool {
	return float64(b) < math.Round(percent*(Buckets/100))
}

func randomBucket() uint32 { return uint32(rand.N(Buckets)) }
