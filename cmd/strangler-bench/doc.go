// Command strangler-bench measures what Strangler costs in front of a
// monolith, next to what nginx and HAProxy cost doing the same job and to
// no proxy at all, and prints one markdown table.
//
//	go run ./cmd/strangler-bench                       # everything, ≈ 8–9 minutes
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
//     it has no mirror, so no shadow scenario.
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
// request it delays (no coordinated omission). Peak RSS is VmHWM from
// /proc/PID/status. The backends count the requests they receive, which
// checks that the split sends 10 % to the service and that every request
// is shadowed. Every configuration runs -runs times, interleaved, so that
// drift of the machine hits all alike; the table shows medians, ranges,
// and ratios to nginx and to direct.
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
