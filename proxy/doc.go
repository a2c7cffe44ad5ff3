// Package proxy is Strangler's request path: it parses and validates the
// YAML config, compiles it into an immutable route table, and for each
// request matches a route, decides the side (monolith or extracted
// service), forwards, and records metrics. It also serves the admin API.
//
// # Routes
//
// A route's path is a chi pattern, and the most specific pattern that
// accepts the request's method wins. `/api/orders/*` matches
// `/api/orders/7` and `/api/orders/7/items` but not `/api/orders` (write a
// second route for that). `/users/{id}` matches one segment. A route with
// `methods` accepts only those: a request with another method falls to a
// less specific route that accepts it, or to the monolith. Requests that
// match no route go to the monolith and are counted as route "_default".
//
// # The split
//
// Each route has a percentage: a float flag in 0..100 (see package flags),
// evaluated per request with the sticky key as targeting key and the
// attributes route, method and path. The sticky key comes from a header,
// cookie or query parameter, or is the client address (sticky: ip, and
// whenever the chosen key is absent). The key, hashed with the route's
// name, falls in one of 10,000 buckets; the request goes to the service
// when
//
//	bucket < percent × 100
//
// That one rule makes the split sticky (a key keeps its bucket, so its
// side, while the percentage holds) and monotonic (raising the percentage
// only adds buckets, so no user moves from the service back to the
// monolith during a ramp). Different routes hash differently, so the users
// who reach the service first differ from route to route. With
// sticky: random, every request draws a bucket.
//
// A flag that is missing, disabled, not a number, outside 0..100 or whose
// targeting rule cannot be run sends the route's traffic to the monolith, the side known to work, and counts
// strangler_flag_errors_total{flag}.
//
// # Forwarding
//
// A body-less request to a plain-HTTP upstream (most of the traffic) takes
// the direct path (direct.go, h1.go): its head is written from the
// client's own fields on a connection from a per-upstream pool and the
// answer is read on the request's goroutine, with no request clone and no
// transport goroutines; so do body-less shadow copies. Everything else
// (request bodies, upgrades, TLS upstreams, tracing) goes through
// net/http/httputil.ReverseProxy, over the same client for body-less calls
// and net/http's Transport for the rest; both paths send the same bytes.
// Bodies stream both ways, responses are flushed as
// they arrive (Server-Sent Events included), WebSocket upgrades pass
// through, other upgrades (h2c) are stripped. Hop-by-hop headers go; the
// peer is appended to X-Forwarded-For, X-Forwarded-Host and
// X-Forwarded-Proto are set after that, so a client cannot strip them via
// Connection; the query is forwarded byte for byte; the incoming Host is
// kept unless preserve_host is false. An upstream that cannot be reached
// answers 502, one that sends no headers within timeouts.response_header
// 504, both with a short plain-text body naming the route, never the
// upstream's address. One that stalls in its body for timeouts.read has
// its answer cut there (upstreamConn.arm); one that stops taking a
// request's body for timeouts.send, without answering, is given up (504).
//
// On Linux (amd64, arm64) the client and upstream sockets read and write
// with raw system calls on Go's poller (rawio_linux.go), so that the
// runtime's monitor thread is not woken by every request at a steady
// rate; work that may compute past 10 ms wakes it first (wakeMonitor).
//
// # Shadow comparison
//
// A route's shadow.percent (or its flag, "<name>-shadow" by default, which
// overrides it live) samples requests to compare. A sampled request whose
// method is in shadow.methods (GET, HEAD, OPTIONS unless listed: a write
// is copied only when the operator says so) is sent to the side the split
// chose, which answers the client, and a copy, marked X-Strangler-Shadow: 1,
// to the other side. The request body is read once, up to
// shadow.max_body, and given to both; the primary's answer is teed up to
// max_body while it streams to the client. The copy is sent by a pool of
// shadow_workers goroutines fed by a queue of shadow_queue; a full queue
// drops the comparison (strangler_shadow_skipped_total{reason="overload"})
// rather than make the client wait. Copies have their own connection pool
// and their own deadline (shadow.timeout), so a slow or broken shadow side
// never delays, alters or fails the client's answer. Whichever answer
// comes second hands the pair to package compare; mismatches are counted
// and the last 100 per route are kept for GET /api/diffs. Only whole
// answers are compared: a primary that failed, was cut, or fell back to the
// monolith counts as reason="primary_failed", and every sampled request is
// counted once (shadowPair.drop). A write whose primary is the service, on
// a route with a fallback, is copied to the monolith only once the service
// has answered, so that a fallback replay and the copy never both reach
// it. With shadow.noise, the monolith gets a second copy of a safe request,
// and what differs between its two answers is noise, not divergence (listed
// as the route's noise_fields).
//
// # Fallback and ejection
//
// When the split chose the service and the call fails before any byte of
// the answer was written (an interim 103 counts), the request is replayed
// to the monolith:
// always after a connect failure (nothing reached the service), and after
// a reset, a timeout or (if configured) a 5xx only for fallback.methods
// and a body buffered whole, since the service may have acted on it. A
// service that fails eject.consecutive_failures times in a row is ejected:
// its whole share goes to the monolith for base_time, doubled on each
// repeat up to max_time; the first request after that is on probation.
// Both are per route and survive config reloads.
//
// # Reload
//
// A reload (SIGHUP, or a change of the config file) validates the new
// config completely, compiles a new route table and swaps one pointer:
// requests in flight finish on the table they started with. A config that
// fails changes nothing. Reloads run one at a time; a route the new table
// lacks loses its metric series and what it learned.
//
// # Limits and hostile requests
//
// The proxy must not be the weak link between the internet (or a front
// proxy) and the monolith. Every client connection is read first by a
// guard (guard.go): a strict parser of HTTP/1.1 framing (RFC 9112,
// framer.go) that runs over the raw bytes before net/http sees them,
// without buffering. A request whose framing two HTTP implementations
// could read differently is answered 400 (501 for an unknown
// Transfer-Encoding) and its connection closed: Content-Length with
// Transfer-Encoding, a Transfer-Encoding other than exactly chunked or in
// HTTP/1.0, several differing or malformed Content-Lengths, a bare CR or
// LF, NUL or another control character, a folded line, a malformed request
// line. net/http never receives a byte after it, so nothing hidden behind
// it reaches an upstream; requests pipelined before it are served. A
// chunked body that breaks the grammar is cut at the first bad byte, the
// upstream call aborted and the client answered 400. Upstream connections
// are watched too: a response with ambiguous framing reaches the client as
// the one response net/http read, and its connection is closed, never
// reused, so the rest of it cannot become the answer to someone else's
// request; a pooled connection is reused only when the guard, reading the
// same bytes, also sees the answer ended. An upstream that answers an
// upload before reading it and resets the connection has that answer
// passed on: the failed write of the body waits while the answer is in
// the socket or being read, since net/http's transport would otherwise
// return the write's error (golang/go#51109). Pipelined requests are
// answered in order, however many come ahead; an idle WebSocket tunnel is
// closed after idle_timeout.
//
// Before routing, escaped unreserved characters are decoded (%6F is o) and
// dot segments, literal or percent-encoded (%2e), are resolved (RFC 3986
// sections 6.2.2.2 and 5.2.4), and the resolved path is the one forwarded:
// /api/orders/../admin is routed and sent as /api/admin. An
// encoded slash (%2F) stays encoded and part of its segment; the query is
// forwarded byte for byte. Header names with an underscore are dropped
// (limits.underscore_headers: drop, reject answers 400, allow).
// X-Forwarded-For, -Proto and -Host are set after hop-by-hop headers are
// removed, so Connection cannot strip them; X-Strangler-Shadow from a
// client is removed; only a WebSocket Upgrade is forwarded.
//
// limits.read_header_timeout disconnects a client that sends its head too
// slowly (slowloris). A head over max_header_bytes, or with more than
// max_header_count lines, gets 431. A body declared larger than max_body
// (the route's, else limits.max_body; 0 is unlimited) gets 413 before
// anything reaches an upstream; a chunked body that grows past it is cut
// there, the upstream call aborted, and the client answered 413 if its
// response had not begun. A client that sends no byte of its body, or reads
// no byte of its response, for stall_timeout is disconnected and its
// upstream call cancelled. A panic while serving a request answers it 500
// (or cuts its response if it had begun), is logged with the route and
// stack, and counts in strangler_panics_total; the process goes on.
package proxy
