//go:build linux

package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// report is everything the table is rendered from; rendering is a pure
// function of it.
type report struct {
	header    []string // lines above the table: date, machine, versions, setup
	scenarios []scenario
	peers     []*peer
	results   []cellResult
	rates     map[string]float64 // open-loop rate per scenario
	idleConns int
	conns     int // closed- and open-loop connections
}

// tableColumns are the table's header cells.
var tableColumns = []string{
	"scenario", "peer", "req/s", "×nginx", "×direct",
	"p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors (all runs)",
	"CPU µs/req", "×nginx", "×direct", "CPU µs/req at rate", "peak RSS MiB", "to service", "shadow/req",
	"context switches/req at rate", "load CPU % at rate", "CPU at rate ×nginx", "sent late p50 / p99 ms",
}

// markdown renders the header lines, the table (medians over the runs,
// min–max where the spread matters) and the notes that say how to read it.
func (rep *report) markdown() string {
	var b strings.Builder
	for _, h := range rep.header {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n| " + strings.Join(tableColumns, " | ") + " |\n|")
	for i := range tableColumns {
		if i < 2 {
			b.WriteString("---|")
		} else {
			b.WriteString("--:|")
		}
	}
	b.WriteString("\n")
	var notes []string
	for _, sc := range rep.scenarios {
		for _, p := range rep.peers {
			cells, note := rep.row(sc, p)
			if cells == nil {
				continue
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
			if note != "" {
				notes = append(notes, note)
			}
		}
	}
	b.WriteString("\n")
	for _, n := range rep.legend() {
		b.WriteString("- " + n + "\n")
	}
	for _, n := range notes {
		b.WriteString("- " + n + "\n")
	}
	return b.String()
}

// row returns the cells of peer p's row in scenario sc (nil: no row) and a
// note on its errors, if any.
func (rep *report) row(sc scenario, p *peer) ([]string, string) {
	dash := func(first string) []string {
		cells := make([]string, len(tableColumns))
		for i := range cells {
			cells[i] = "—"
		}
		cells[0], cells[1], cells[2] = sc.name, p.name, first
		return cells
	}
	switch {
	case p.name == peerDirect && sc.kind == kindIdle:
		return nil, ""
	case p.missing != "":
		return dash(p.missing), ""
	case isFloor(p.name) && p.unsupported(sc) != "":
		return nil, "" // a yardstick: a row where it was measured is enough
	case p.unsupported(sc) != "":
		return dash(p.unsupported(sc)), ""
	}
	ok, failed := rep.find(sc.name, p.name)
	if len(ok) == 0 && len(failed) == 0 {
		return nil, "" // direct, measured under another scenario of this size
	}
	note := ""
	if len(failed) > 0 {
		note = fmt.Sprintf("%s / %s: %d of %d runs failed; first: %s", sc.name, p.name, len(failed), len(ok)+len(failed), flatten(failed[0].err))
	}
	if len(ok) == 0 {
		return dash("failed"), note
	}
	// A run other processes disturbed goes into the medians like the
	// others: say which, so that a reader does not blame the peer.
	for _, r := range ok {
		if r.otherCPU > disturbedCPU {
			note = strings.TrimPrefix(note+"; ", "; ") + fmt.Sprintf("%s / %s: run %d disturbed: other processes used %.2f CPU during it", sc.name, p.name, r.run+1, r.otherCPU)
		}
	}
	cells := dash("")
	if sc.kind == kindIdle {
		held := spreadOf(collect(ok, func(r *cellResult) float64 { return mib(r.idleHeld) }))
		perConn := spreadOf(collect(ok, func(r *cellResult) float64 {
			return (float64(r.idleHeld) - float64(r.idleBase)) / float64(max(rep.idleConns, 1))
		}))
		cells[2] = fmt.Sprintf("%d idle conns", rep.idleConns)
		cells[14] = fmt.Sprintf("%s held (%s KiB/conn)", fmtSpread(held, 1), strconv.FormatFloat(perConn.med, 'f', 1, 64))
		return cells, note
	}
	rps := spreadOf(collect(ok, func(r *cellResult) float64 { return r.rps }))
	cpu := spreadOf(collect(ok, func(r *cellResult) float64 { return r.cpuPerReq }))
	ngRPS, ngCPU, ngAtRate := rep.reference(sc, peerNginx)
	dRPS, dCPU, _ := rep.reference(sc, peerDirect)
	cells[2] = fmtSpread(rps, 0)
	cells[3] = fmtRatio(rps.med, ngRPS)
	cells[4] = fmtRatio(rps.med, dRPS)
	for i := range latencyPercentiles {
		cells[5+i] = fmtSpreadMs(spreadOf(collect(ok, func(r *cellResult) float64 { return r.lat[i] })))
	}
	var errs uint64
	var firstErr string
	for _, r := range ok {
		errs += r.errors
		if firstErr == "" {
			firstErr = r.firstErr
		}
	}
	cells[9] = strconv.FormatUint(errs, 10)
	if errs > 0 {
		note = strings.TrimPrefix(note+"; ", "; ") + fmt.Sprintf("%s / %s: %d errors over %d runs; first: %s", sc.name, p.name, errs, len(ok), firstErr)
	}
	cells[10] = fmtSpread(cpu, 1)
	cells[11] = fmtRatio(cpu.med, ngCPU)
	cells[12] = fmtRatio(cpu.med, dCPU)
	atRate := spreadOf(collect(ok, func(r *cellResult) float64 { return r.cpuAtRate }))
	cells[13] = fmtSpread(atRate, 1)
	cells[19] = fmtRatio(atRate.med, ngAtRate)
	cells[20] = fmtMs(spreadOf(collect(ok, func(r *cellResult) float64 { return r.lag[0] })).med) + " / " +
		fmtMs(spreadOf(collect(ok, func(r *cellResult) float64 { return r.lag[1] })).med)
	if p.name != peerDirect {
		cells[14] = fmtSpread(spreadOf(collect(ok, func(r *cellResult) float64 { return mib(r.hwmKB) })), 1)
	}
	cells[15] = fmt.Sprintf("%.1f %%", 100*spreadOf(collect(ok, func(r *cellResult) float64 { return r.toService })).med)
	cells[17] = fmtSpread(spreadOf(collect(ok, func(r *cellResult) float64 { return r.swAtRate })), 2)
	cells[18] = fmtSpread(spreadOf(collect(ok, func(r *cellResult) float64 { return 100 * r.loadAtRate })), 0)
	if sc.kind == kindShadow {
		cells[16] = fmt.Sprintf("%.2f / %.2f",
			spreadOf(collect(ok, func(r *cellResult) float64 { return r.shadowsSat })).med,
			spreadOf(collect(ok, func(r *cellResult) float64 { return r.shadowsRate })).med)
	}
	return cells, note
}

// reference returns the median throughput, CPU per request and CPU per
// request at the fixed rate of peer in sc, for ratios; direct's come from
// the scenario with the same body size it was measured under. Zero when
// there is none.
func (rep *report) reference(sc scenario, peer string) (rps, cpu, cpuAtRate float64) {
	var ok []cellResult
	for _, s := range rep.scenarios {
		if s.name == sc.name || (peer == peerDirect && s.size == sc.size) {
			o, _ := rep.find(s.name, peer)
			ok = append(ok, o...)
		}
	}
	return spreadOf(collect(ok, func(r *cellResult) float64 { return r.rps })).med,
		spreadOf(collect(ok, func(r *cellResult) float64 { return r.cpuPerReq })).med,
		spreadOf(collect(ok, func(r *cellResult) float64 { return r.cpuAtRate })).med
}

// find returns peer's measured and failed results in scenario name.
func (rep *report) find(scenario, peer string) (ok, failed []cellResult) {
	for _, r := range rep.results {
		if r.scenario != scenario || r.peer != peer {
			continue
		}
		if r.err != "" {
			failed = append(failed, r)
		} else {
			ok = append(ok, r)
		}
	}
	return ok, failed
}

// disturbedCPU is the CPUs' worth of other processes' work during a
// cell's measured phases past which the table names the run.
const disturbedCPU = 0.1

// legend says how each column was measured.
func (rep *report) legend() []string {
	var rates []string
	for _, sc := range rep.scenarios {
		if r, ok := rep.rates[sc.name]; ok {
			rates = append(rates, fmt.Sprintf("%s %s", sc.name, thousands(r)))
		}
	}
	var other []float64
	for _, r := range rep.results {
		if r.err == "" && r.idleHeld == 0 {
			other = append(other, r.otherCPU)
		}
	}
	o := spreadOf(other)
	var floors []string
	if slices.ContainsFunc(rep.peers, func(p *peer) bool { return isFloor(p.name) }) {
		floors = append(floors, "go-nethttp and go-net are floors, not proxies to deploy (cmd/strangler-bench/floor.go): the least forwarding a proxy can do in Go, one upstream connection per client connection, no validation, limits, timeouts, metrics or checks before reuse; go-nethttp behind net/http's server, go-net on the net package with no HTTP library. What a peer costs above them is its own; what they cost above nginx, every Go proxy pays.")
	}
	return append([]string{
		fmt.Sprintf("Other processes on the machine used %.2f CPU (median; max %.2f) during the measured phases; near 0 on a quiet machine, more makes the figures noisy.", o.med, o.max),
		"req/s: closed loop, " + strconv.Itoa(rep.conns) + " keep-alive connections, each sending its next request when the last is answered; median of the runs (min–max). On two cores the load side saturates before most peers do (a peer's share of its CPU in the closed loop is its CPU µs/req × req/s, well under one for nginx and HAProxy), so req/s tells how much a peer holds the load generator back rather than how many requests it could serve: CPU µs/req is the figure that separates proxies.",
		"p50…p99.9: open loop at a fixed rate, latency from each request's scheduled send time (no coordinated omission), median of the runs (min–max); requests/s: " + strings.Join(rates, ", ") + ".",
		"sent late: how long after its scheduled time the load generator sent each request (medians of the runs' p50 and p99). It is part of every latency of the row, the load side's and not the proxy's (a request waits when the load side's CPU is busy: see load CPU % at rate), and peers measured at the same rate bear it alike; scenarios at different rates do not. The requests are paced by a kernel timer (timerfd), evenly: Go's own timers wake up to 1 ms late in an idle process and sent them in bursts, which every peer serves with less CPU a request.",
		"errors (all runs): the sum over the runs, warm-up, closed and open loops: failed requests, other statuses, short bodies, requests the load generator's client had to resend after a connection failed before any answer, and (open loop) requests not answered in time.",
		"CPU µs/req: user + system CPU of the proxy's processes (nginx: master + worker) over the closed loop and until the shadow copies it queued were sent, per request (µs per request = CPU ms per 1,000 requests); for direct, the monolith backend's own CPU, so ×direct is the proxy's cost in backends. CPU µs/req at rate: the same over the open loop, where every peer serves the same rate, and every shadow copy is sent (CPU at rate ×nginx compares the same work; CPU µs/req ×nginx does not in the shadow scenarios, where Strangler sheds copies at saturation).",
		"context switches/req at rate: the proxy's threads' context switches (voluntary and not, from /proc) over the open loop, per request; unlike CPU time, a count that a noisy machine does not change. Each is a thread put to sleep and woken; a Go proxy's include its sysmon thread's (see the README, Performance).",
		"load CPU % at rate: the CPU the load generator and the backends used over the open loop, as a share of the one CPU they are pinned to. Near 100 %, requests wait on the load side too, and the latencies measure it as much as the proxy.",
		"peak RSS: VmHWM of the proxy's processes over the cell; idle: VmRSS with the idle connections held open after one request each, and per connection above the RSS before them. nginx's are the sum over its master and worker, which counts the pages they share twice: about 3 MiB too high (13.5 MiB summed at rest, 10.2 MiB of distinct pages); per connection is not affected.",
		"to service: share of client requests the service answered (the split is 10 %; over a fixed pool of 1,000 users the share is not exactly 10 %). shadow/req: shadow copies the backends received per client request, in the closed loop / in the open loop (1.00: every request copied; Strangler sheds copies when its shadow queue is full, so at saturation its CPU per request covers fewer copies than nginx's).",
		"direct's latency is higher than through a proxy at the same rate because its backend shares the load generator's CPU.",
		"nginx mirror sends the copy and discards its answer; Strangler also captures both answers and compares them. HAProxy cannot mirror.",
		"direct is measured once per body size per run, under the first scenario of that size, and is the ×direct reference for all of them.",
	}, floors...)
}

// flatten puts a multi-line message (an error with a log tail) on one
// line, for a list item under the table.
func flatten(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ⏎ ")
}

// collect maps f over rs.
func collect(rs []cellResult, f func(*cellResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i := range rs {
		out[i] = f(&rs[i])
	}
	return out
}

// fmtSpread renders a median with its range, "12,345 (12,100–12,600)", or
// just the median for a single run.
func fmtSpread(s spread, prec int) string {
	f := func(v float64) string {
		if prec == 0 {
			return thousands(v)
		}
		return strconv.FormatFloat(v, 'f', prec, 64)
	}
	if s.n <= 1 {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.med), f(s.min), f(s.max))
}

// fmtSpreadMs renders a latency's median with its range, as fmtMs does.
func fmtSpreadMs(s spread) string {
	if s.n <= 1 {
		return fmtMs(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtMs(s.med), fmtMs(s.min), fmtMs(s.max))
}

// fmtRatio renders a/b as "0.62×", or "—" without a reference.
func fmtRatio(a, b float64) string {
	if b <= 0 || a <= 0 {
		return "—"
	}
	return strconv.FormatFloat(a/b, 'f', 2, 64) + "×"
}

// fmtMs renders milliseconds with three significant digits or so.
func fmtMs(ms float64) string {
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

// thousands renders v rounded, with thousands separators: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
