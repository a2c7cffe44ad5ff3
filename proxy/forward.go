package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// upstream forwards requests to one backend (the monolith or a route's
// service) on behalf of one route. It is built once per route table and only
// read afterwards.
type upstream struct {
	route   string
	backend string
	target  *url.URL
	rp      *httputil.ReverseProxy
	metrics *backendMetrics

	// The direct path (direct.go); direct is nil where it does not apply
	// (TLS upstreams, tracing on).
	direct       *h1Transport
	directPool   *h1Pool // direct's pool for target.Host, looked up once rather than per call
	preserveHost bool
	shadow       bool // the copies' upstream: they carry X-Strangler-Shadow: 1
	// refuser is the route's stand-in for the proxy's own answers (a
	// client's body refused mid-call: 400, 408, 413), set at compile.
	refuser  *upstream
	answered func(*http.Response) error
	onError  func(w http.ResponseWriter, r *http.Request, err error)
	buffers  httputil.BufferPool
	log      *slog.Logger
	read     time.Duration // timeouts.read (see answerBody)
}

// transports pools upstream connections. A transport is shared by every
// upstream with the same timeouts, since it keeps one pool per upstream
// address inside it; a route that overrides its timeouts gets its own.
type transports struct {
	mu    sync.Mutex
	m     map[Timeouts]*h1Transport
	hosts map[Timeouts]map[string]bool // what the installed table sends to, by transport (retain)
}

func (ts *transports) get(t Timeouts) *h1Transport {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if tr, ok := ts.m[t]; ok {
		return tr
	}
	if ts.m == nil {
		ts.m = map[Timeouts]*h1Transport{}
	}
	d := &net.Dialer{Timeout: time.Duration(t.Connect), KeepAlive: 30 * time.Second}
	std := &http.Transport{
		Proxy:       nil, // an edge proxy must not be redirected by HTTP_PROXY in its environment
		DialContext: guardUpstream(d.DialContext, true, t),
		// The guard goes over TLS, where it reads the answers' bytes; under
		// it, it saw ciphertext and stepped aside, and a TLS upstream's
		// ambiguous answers poisoned its pooled connections (a review).
		DialTLSContext:         guardUpstream(dialTLS(d.DialContext, time.Duration(t.Connect)), true, t),
		ResponseHeaderTimeout:  time.Duration(t.ResponseHeader),
		MaxResponseHeaderBytes: maxUpstreamHead, // as the direct path's reader; within the guard's reach
		IdleConnTimeout:        time.Duration(t.Idle),
		// net/http's default of 2 idle connections per host makes every
		// burst open new connections to the upstream.
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 512,
		// Pass Accept-Encoding and compressed bodies through untouched:
		// the client, not the proxy, decides what it can decode.
		DisableCompression: true,
	}
	// The direct path writes no body, and reads its answer on the
	// writing goroutine: no failed write of its waits for an answer.
	tr := &h1Transport{std: std, dial: guardUpstream(d.DialContext, false, t), respHeader: time.Duration(t.ResponseHeader),
		read: time.Duration(t.Read), idle: time.Duration(t.Idle), maxIdle: std.MaxIdleConnsPerHost}
	ts.m[t] = tr
	return tr
}

// retain lets go of what the installed table's routes no longer send to
// (uses, those of the primary transports, or with shadow of the shadow
// ones): a transport no route's timeouts name any more, and an upstream's
// pool; their idle connections are closed now. net/http's transport keeps
// one pool for all of a key's hosts, so all its idle connections close
// when one of its hosts goes: a few new connections after such a reload.
// A request of the old table still in flight finishes on them, and its
// connection is closed when it has idled for the idle timeout. Else each
// reload that changed a timeout or an address kept a transport and its
// pools for good, and a removed upstream's connections for a minute and
// a half.
func (ts *transports) retain(uses []upstreamUse, shadow bool) {
	keep := map[Timeouts]map[string]bool{}
	for _, u := range uses {
		if u.shadow != shadow {
			continue
		}
		if keep[u.key] == nil {
			keep[u.key] = map[string]bool{}
		}
		keep[u.key][u.host] = true
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for key, tr := range ts.m {
		hosts, ok := keep[key]
		if !ok {
			delete(ts.m, key)
			tr.retire()
			continue
		}
		tr.pools.Range(func(host, p any) bool {
			if !hosts[host.(string)] {
				tr.pools.Delete(host)
				p.(*h1Pool).retire()
			}
			return true
		})
		for host := range ts.hosts[key] {
			if !hosts[host] {
				tr.std.CloseIdleConnections()
				break
			}
		}
	}
	ts.hosts = keep
}

func (ts *transports) closeIdle() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, tr := range ts.m {
		tr.CloseIdleConnections()
	}
}

// bufferPool lends ReverseProxy (and the direct path) its copy buffers,
// so that streaming a body costs no allocation per request.
//
// A buffer is 64 KiB: a 64 KiB answer then streams in two reads and writes
// (what the connection's reader already holds, then the rest) rather than
// three, about 6 % of its CPU in the benchmark.
type bufferPool struct{ bufferFreeList }

func newBufferPool() *bufferPool {
	return &bufferPool{bufferFreeList{size: 64 << 10}}
}

// Get and Put implement httputil.BufferPool.
func (bp *bufferPool) Get() []byte  { return bp.get() }
func (bp *bufferPool) Put(b []byte) { bp.put(b) }

// bufferFreeList is a free list of buffers of one size, shared by every
// request of the server: a sync.Pool, whose per-CPU slots take no lock,
// where a list under one mutex serialised every CPU on every proxied
// request (BenchmarkBufferFreeList: on 2 CPUs the mutex's get and put
// took longer than on 1). The pool holds a buffer's first byte, not the
// slice: a pointer fits an interface as it is, while a slice put into one
// is boxed, an allocation per put. The length is the list's size, which
// put checks against the buffer's capacity. What the pool holds is let go
// over two collections without use, as net/http's pooled buffers are.
type bufferFreeList struct {
	size int
	pool sync.Pool // of *byte: the start of a buffer of size bytes
}

func (l *bufferFreeList) get() []byte {
	if p, _ := l.pool.Get().(*byte); p != nil {
		return unsafe.Slice(p, l.size)
	}
	return make([]byte, l.size)
}

// put keeps b if it is one of the list's size (a buffer grown past it is
// left to the collector).
func (l *bufferFreeList) put(b []byte) {
	if cap(b) != l.size {
		return
	}
	l.pool.Put(unsafe.SliceData(b)) // the size bytes from there are b's array
}

type upstreamOptions struct {
	route, backend string
	target         *url.URL
	preserveHost   bool
	transport      http.RoundTripper
	buffers        httputil.BufferPool
	metrics        *backendMetrics
	log            *slog.Logger
	// shadow marks the copies (X-Strangler-Shadow: 1) and records failures
	// in the capture instead of answering a client.
	shadow  bool
	tracing *tracing
	// answered sees the response headers of each call (ModifyResponse);
	// failed may answer a failed call itself (a fallback) and report so.
	answered func(*http.Response) error
	failed   func(w http.ResponseWriter, r *http.Request, kind string, err error) bool
}

func newUpstream(o upstreamOptions) *upstream {
	u := &upstream{route: o.route, backend: o.backend, target: o.target, metrics: o.metrics,
		preserveHost: o.preserveHost, shadow: o.shadow, answered: o.answered, buffers: o.buffers, log: o.log}
	if h1, ok := o.transport.(*h1Transport); ok {
		u.read = h1.read
		if o.target.Scheme == "http" && o.tracing == nil {
			u.direct = h1
			u.directPool = h1.pool(o.target.Host)
		}
	}
	u.onError = func(w http.ResponseWriter, r *http.Request, err error) {
		kind, status := classify(r, err)
		if c, ok := w.(*capture); ok {
			// A shadow call: its failure is a comparison result, not an
			// upstream error of the route's traffic.
			if kind == errCanceled {
				kind = errTimeout // the copy's own deadline, not a client
			}
			c.failed = kind
			return
		}
		if rec, ok := w.(*recorder); ok && rec.tee != nil {
			rec.tee.failed = kind // no answer of the upstream's to compare
		}
		if answerBodyError(w, r, o.route, err) {
			// The client's body was refused: not the upstream's failure,
			// and the proxy's own answer.
			if rec, ok := w.(*recorder); ok && u.refuser != nil {
				rec.servedBy = u.refuser
			}
			return
		}
		if !errors.Is(err, errReplay5xx) { // a 5xx is an answer, not a failed call
			u.metrics.errors[kind].Inc()
			if kind != errCanceled {
				o.log.Warn("upstream error", "route", o.route, "backend", o.backend, "kind", kind, "error", elide(err))
			}
		}
		if o.failed != nil && o.failed(w, r, kind, err) {
			return
		}
		what := describeKind(kind)
		if errors.Is(err, errReplay5xx) {
			what = "answered with a server error" // not replayed after all: its 1xx was out
		}
		writeError(w, status, fmt.Sprintf("route %s: %s %s", o.route, o.backend, what))
	}
	u.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(o.target)
			// Forward the query byte for byte: Rewrite's re-encoding drops
			// pairs with ';' and reorders keys, so the upstream would not see
			// what the client sent.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			if o.preserveHost {
				pr.Out.Host = pr.In.Host
			}
			setForwarded(pr)
			o.tracing.dropIncoming(pr.Out.Header)
			// Request trailers are not forwarded (nginx does not forward
			// them either): sent after the body, they would get past
			// every rule applied to the head (underscore names, the
			// X-Forwarded fields the proxy sets, X-Strangler-Shadow).
			pr.Out.Trailer = nil
			if o.shadow {
				pr.Out.Header[shadowHeader] = shadowMark
			}
			if pr.Out.GetBody != nil && !safeMethod(pr.Out.Method) && idempotencyKey(pr.Out.Header) {
				// The transport may retry this write on a new connection
				// after a pooled one failed; if that dial then fails,
				// classify must not read it as nothing reached.
				pr.Out = pr.Out.WithContext(withWriteSeen(pr.Out.Context()))
			}
			// Only WebSocket may be upgraded through: other protocols
			// (h2c above all) would tunnel past the proxy's routing.
			if pr.Out.Header.Get("Upgrade") != "" && !isWebSocket(pr.Out.Header) {
				pr.Out.Header.Del("Upgrade")
				pr.Out.Header.Del("Connection")
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			// What the direct path's reader refuses, refused here too:
			// net/http's transport takes any HTTP/d.d and a code of 012,
			// which the client's server cannot even write (WriteHeader
			// panics under 100).
			if resp.ProtoMajor != 1 || resp.ProtoMinor > 1 {
				return fmt.Errorf("malformed HTTP version %q", resp.Proto)
			}
			if resp.StatusCode < 100 {
				return fmt.Errorf("malformed HTTP status code %d", resp.StatusCode)
			}
			chunked := len(resp.TransferEncoding) > 0 // trailers may follow
			if chunked {
				dropBadTrailers(resp.Trailer)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols && (chunked || !o.shadow) {
				// (A 101's body is the tunnel, which ReverseProxy needs
				// as it is.)
				b := &answerBody{ReadCloser: resp.Body, resp: resp, trailers: chunked}
				if !o.shadow {
					b.u = u
				}
				resp.Body = b
			}
			if o.answered != nil {
				return o.answered(resp)
			}
			return nil
		},
		Transport:  o.tracing.transport(o.transport, o.route, o.backend, role(o.shadow)),
		BufferPool: o.buffers,
		// 0: no timer-driven flushing. The recorder flushes after each
		// write instead (streaming every chunk as it arrives, as -1 would)
		// without the timer and writer ReverseProxy allocates for -1.
		FlushInterval: 0,
		ErrorLog:      log.New(redactingLog{o.log.Handler(), slog.LevelWarn}, "", 0),
		ErrorHandler:  u.onError,
	}
	return u
}

func role(shadow bool) string {
	if shadow {
		return roleShadow
	}
	return rolePrimary
}

// setForwarded appends the peer to X-Forwarded-For (as nginx's
// $proxy_add_x_forwarded_for does: SetXForwarded would replace the chain)
// and sets X-Forwarded-Proto and X-Forwarded-Host. It runs after
// ReverseProxy removed hop-by-hop headers, so a client cannot strip these
// by naming them in Connection.
func setForwarded(pr *httputil.ProxyRequest) {
	// One backing array for both new values: header value slices are never
	// appended to in place, so sharing it is safe, and it saves an
	// allocation on every request.
	vals := [...]string{forwardedFor(pr.In), pr.In.Host}
	h := pr.Out.Header
	h["X-Forwarded-For"] = vals[0:1:1]
	if pr.In.Host != "" {
		h["X-Forwarded-Host"] = vals[1:2:2]
	} else {
		// No host to name (an HTTP/1.0 request without Host, or an empty
		// Host): an empty field would tell the upstream the client asked
		// for "" (ReverseProxy dropped the client's own before Rewrite).
		delete(h, "X-Forwarded-Host")
	}
	if pr.In.TLS != nil {
		h["X-Forwarded-Proto"] = protoHTTPS
	} else {
		h["X-Forwarded-Proto"] = protoHTTP
	}
}

// isWebSocket reports whether h asks for the one upgrade passed through.
func isWebSocket(h http.Header) bool {
	return strings.EqualFold(h.Get("Upgrade"), "websocket")
}

// Shared, never modified: see setForwarded.
var protoHTTP, protoHTTPS = []string{"http"}, []string{"https"}

// dialTLS dials with dial and then makes the TLS handshake itself, within
// timeout, as the transport would (its default client config, the host as
// server name, HTTP/1.1). Done inside the dial, a failed handshake is a
// dial error: classify counts it as connect, and fallback replays any
// method then, since no byte of the request reached the service. Left to
// the transport, a handshake timeout looked like a response timeout and a
// handshake the service hung up on like a reset, and a POST was not
// replayed. The caller puts the upstream guard over the connection this
// returns, where it reads the plaintext.
func dialTLS(dial func(ctx context.Context, network, addr string) (net.Conn, error), timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		raw = rawIO(raw)
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		tc := tls.Client(raw, &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}})
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: fmt.Errorf("TLS handshake: %w", err)}
		}
		return tc, nil
	}
}

// classify maps a transport error to the kind counted and the status the
// client gets: 502 when the upstream could not answer, 504 when it did not
// answer in time.
func classify(r *http.Request, err error) (kind string, status int) {
	if r.Context().Err() != nil {
		return errCanceled, 499 // nginx's "client closed request"; nobody reads it
	}
	var op *net.OpError
	var dns *net.DNSError
	switch {
	// A TLS handshake's failures (a certificate refused, plain HTTP on a
	// TLS port) come as dial errors from dialTLS. A TLS record error after
	// it came on a request already sent, which must not be replayed.
	case errors.As(err, &op) && op.Op == "dial", errors.As(err, &dns):
		if w, ok := r.Context().Value(writeSeenKey{}).(*atomic.Bool); ok && w.Load() {
			// A retry's dial failed, after an earlier attempt was written:
			// the request may have reached the upstream.
			return errReset, http.StatusBadGateway
		}
		return errConnect, http.StatusBadGateway
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errTimeout, http.StatusGatewayTimeout
	}
	return errReset, http.StatusBadGateway
}

// writeSeenKey holds, in a retryable write's context, whether the
// transport wrote the request on any attempt.
type writeSeenKey struct{}

// withWriteSeen returns ctx with a trace that records, under
// writeSeenKey, that the transport wrote the request.
func withWriteSeen(ctx context.Context) context.Context {
	seen := new(atomic.Bool)
	ctx = context.WithValue(ctx, writeSeenKey{}, seen)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { seen.Store(true) }})
}

// idempotencyKey reports whether net/http's transport takes the request
// as idempotent for retries, as it does for these headers.
func idempotencyKey(h http.Header) bool {
	return h["Idempotency-Key"] != nil || h["X-Idempotency-Key"] != nil
}

func describeKind(kind string) string {
	switch kind {
	case errConnect:
		return "unreachable"
	case errTimeout:
		return "did not answer in time"
	case errCanceled:
		return "request canceled by client"
	}
	return "connection failed"
}

// writeError answers with a short plain-text body naming the route and the
// reason, never the upstream's address or a Go error string.
func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+": "+msg+"\n")
}

// parseTrusted compiles trusted_proxies (validated already).
func parseTrusted(cidrs []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		if p, err := parsePrefix(c); err == nil {
			out = append(out, p)
		}
	}
	return out
}
