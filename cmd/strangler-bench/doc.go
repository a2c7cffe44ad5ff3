// Command strangler-bench measures what Strangler costs in front of a
// monolith, next to what nginx and HAProxy cost doing the same job and to
// no proxy at all, and prints one markdown table.
//
//	go run ./cmd/strangler-bench                       # everything, ≈ 10 minutes
//	go run ./cmd/strangler-bench -duration 1s -runs 1  # a quick look
//	go run ./cmd/strangler-bench -scenarios shadow -peers strangler,nginx -out bench.md
//
// # What runs
//
// Two backends (this binary re-executed with a hidden -backend mode: a
// monolith and an extracted service, identical stdlib servers answering
// fixed JSON bodies of 1 KiB or 64 KiB) and, in turn, each peer in front of
// them on loopback:
//
//   - direct: no proxy, the load hits the monolith: the limit;
//   - strangler: ./cmd/strangler built once, `strangler serve` with a
//     generated config and flag file;
//   - nginx: split_clients on X-User-Id for the split, mirror for the
//     shadow copy, keep-alive upstreams, one worker, run in the foreground
//     with its own prefix;
//   - haproxy: servers weighted 10/90 and hashed on X-User-Id, one thread;
//     it has no mirror, so no shadow scenario;
//   - go-nethttp and go-net, the floors (floor.go; this binary re-executed
//     with a hidden -floor mode): the least forwarding a proxy can do in
//     Go, one upstream connection per client connection, no checks,
//     limits or metrics, a mirror that discards the answer; go-nethttp
//     behind net/http's server, go-net on the net package alone. They are
//     yardsticks: what a Go proxy costs above them is its own, what they
//     cost above nginx every Go proxy pays. With -peers all they run
//     split-1k and shadow-1k only, to keep the whole run near 10 minutes.
//
// Each peer gets one CPU (taskset -c 0; GOMAXPROCS=1, worker_processes 1,
// nbthread 1) and the load generator and the backends the other (taskset
// -c 1). A peer that is not installed, or fails to start, is reported in
// the table, never silently left out. A peer is started afresh for every
// cell, so that its peak memory is that of the cell.
//
// # Scenarios
//
//   - plain: no route matches; every request goes to the monolith;
//   - split: one route at 10 %, sticky on X-User-Id drawn per request
//     from a pool of 1,000 users;
//   - shadow: the split, plus a copy of every request to the other side
//     (Strangler compares the two answers off the request path; nginx's
//     mirror sends and discards);
//
// each with 1 KiB and 64 KiB bodies; and idle: 1,000 keep-alive
// connections held open after one request each, for the memory they cost.
//
// # What is measured
//
// Per cell, after a short warm-up: a closed loop at fixed concurrency (64
// keep-alive connections, each sending its next request when the last is
// answered) gives requests/s, and the proxy's CPU time (utime + stime of
// all its processes, from /proc/PID/stat) per request; then an open loop at
// a fixed rate (half of nginx's closed-loop throughput in the first run,
// the same for every peer) gives latency percentiles measured from each
// request's scheduled send time, so that a stall counts against every
// request it delays (no coordinated omission). The requests are paced by
// a kernel timer (timerfd) in Go's network poller, evenly: on Go's own
// timers, which wake up to a millisecond late in an idle process, they
// went out in bursts, which cost every peer less CPU a request than the
// steady rate (a quarter to a third less). How late the load generator
// itself sent each request is recorded too and shown beside them: that
// delay is in every latency of the row. An error is a
// failed request, another status than 200, a short body, or a request
// net/http's client had to send again after its connection failed before
// any answer (its silent retry would hide a reset). Peak RSS is VmHWM from
// /proc/PID/status. The backends count the requests they receive, which
// checks that the split sends 10 % to the service and that every request
// is shadowed. Every configuration runs -runs times, interleaved, so that
// drift of the machine hits all alike; the table shows medians, ranges,
// and ratios to nginx and to direct.
//
// # Soak
//
//	go run ./cmd/strangler-bench -soak 10m            # 10 minutes after a 30 s warm-up
//	go run ./cmd/strangler-bench -soak 2m -rate 1000 -out soak.md
//
// A fault soak of Strangler alone, the backends re-executed with fault
// modes: an open loop at -rate (default 2,000 requests/s; 90 % GET, 10 %
// POST with a small body; X-User-Id from the pool of 1,000 users) through
// one route at 50 %, sticky on X-User-Id, with every GET shadowed
// (shadow 100 %), fallback on connect, reset, timeout and 5xx, ejection
// after 5 failures (2 s, doubling to 10 s), connect and response-header
// timeouts of 200 ms and 2 s. The service takes 2 ms per answer, so that a
// kill catches requests in flight. Meanwhile, on a fixed schedule:
//
//   - the service is SIGKILLed every 30 s and restarted on the same port
//     after 1 s (a port below the ephemeral range, so that none of the
//     proxy's outgoing connections can take it meanwhile);
//   - it answers 503 to everything for 5 s every minute (an admin request
//     to the backend);
//   - it resets 5 % of the shadow copies it gets (hijack, SO_LINGER 0,
//     close);
//   - the flag file is rewritten every 5 s (a temporary file, then a
//     rename, as `strangler ramp` does), 60, 50, 40, 50 % in turn, and the
//     time until GET /api/routes shows the new value is measured (the
//     README promises 2 s);
//   - the config is rewritten every 20 s, an extra route toggled, and the
//     proxy sent SIGHUP; the time until /api/routes shows it is measured.
//
// Every fault period divides the minute, and the proxy's /metrics is read
// after the warm-up and then every minute at the same point of the fault
// cycle, under load, with a line per minute on stderr (drift shows there).
// The table (stdout, and -out) gives the client's requests and errors by
// cause for GET and POST, then the proxy's goroutines, RSS and open file
// descriptors after the warm-up and at the end, fallbacks, ejections,
// comparisons, skipped shadow copies and reload errors.
//
// The goals: no GET fails (the fallback covers every service failure); a
// POST fails only when the service really failed after receiving it;
// goroutines, RSS and descriptors flat after the warm-up (within a
// tolerance, shown); no reload error; every ramp applied within 2 s. To
// judge POSTs, each carries a unique X-Soak-Id that the backends append to
// an event log on receipt and on answer (O_APPEND, so a SIGKILL loses
// nothing): a failed POST is explained when the service answered it 503,
// or received it and was killed before answering. The soak exits 1 and
// names every goal it missed. It also reports how much CPU other processes
// used: on a busy machine, a pinned process starved for 2 s makes the
// proxy time out, and the soak warns that the figures are the machine's.
//
// # Why CPU per request is the figure that matters
//
// On a two-core machine the load generator has one core, and with the
// backends beside it, it saturates (near 38k requests/s with 1 KiB bodies
// when alone) before a good proxy on the other core does: requests/s then
// measures the generator, not the proxy, and nginx and HAProxy look alike.
// CPU time per request does not depend on who the bottleneck is: it is what
// the proxy costs on a production box, where it is the proxy that
// saturates, and its ratio to nginx's says how many more cores Strangler
// needs for the same traffic. The ratio to direct (the backend's own CPU
// per request) says the same in backends.
package main
