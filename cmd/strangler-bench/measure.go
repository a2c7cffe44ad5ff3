//go:build linux

package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"
)

// measureLoad runs the warm-up, the closed loop (throughput, CPU) and the
// open loop (latency, CPU at a rate every peer sustains), reading the
// proxy's CPU time and the backends' counters around each.
func (b *bench) measureLoad(ctx context.Context, c cell, in *instance, r *cellResult) error {
	tgt := newLoadTarget("http://"+in.addr+c.sc.path(), c.sc.routed(), c.sc.size, b.opt.conns)
	defer tgt.close()
	warm := tgt.closedLoop(ctx, b.opt.conns, warmup)
	if warm.requests == 0 {
		return fmt.Errorf("warm-up: no request answered: %s", warm.firstErr)
	}
	var phases [2]loadResult
	var cpu, busy, ours, load [3]time.Duration
	var sw [3]uint64
	var at [3]time.Time
	// The load side's CPU and the time at the end of the open loop itself,
	// before the settle that follows it (idle on the load side).
	var openLoad time.Duration
	var openEnd time.Time
	var counts [3][2]backendCounts
	for i := range 3 {
		var err error
		if counts[i], err = b.settle(ctx); err != nil {
			return err
		}
		if cpu[i], err = groupCPU(in.pgid); err != nil {
			return fmt.Errorf("%s: %w (did it exit?)", c.p.name, err)
		}
		if sw[i], err = groupSwitches(in.pgid); err != nil {
			return fmt.Errorf("%s: %w (did it exit?)", c.p.name, err)
		}
		if busy[i], ours[i], load[i], err = b.machineCPU(in); err != nil {
			return err
		}
		at[i] = time.Now()
		switch i {
		case 0:
			phases[0] = tgt.closedLoop(ctx, b.opt.conns, b.opt.duration)
			if ctx.Err() != nil {
				return ctx.Err() // a cut-short loop must not set the rate
			}
			if phases[0].requests == 0 {
				// Nor a loop that answered nothing (a rate of 0), and
				// its figures are not figures.
				return fmt.Errorf("closed loop: no request answered: %s", phases[0].firstErr)
			}
			r.rate = b.rateFor(c, phases[0].rps())
		case 1:
			phases[1] = openLoop(ctx, b.opt.conns, r.rate, b.opt.duration, openGrace, tgt.do)
			openEnd = time.Now()
			if phases[1].requests == 0 {
				return fmt.Errorf("open loop: no request answered: %s", phases[1].firstErr)
			}
			if _, _, openLoad, err = b.machineCPU(in); err != nil {
				return err
			}
		}
	}
	// The machine's and the processes' counters are sampled differently:
	// on a quiet machine the difference wobbles around 0 by a few hundredths.
	r.otherCPU = max(0, float64((busy[2]-busy[0])-(ours[2]-ours[0]))/float64(at[2].Sub(at[0])))
	r.loadAtRate = float64(openLoad-load[1]) / float64(openEnd.Sub(at[1]))
	closed, open := &phases[0], &phases[1]
	r.rps = closed.rps()
	r.cpuPerReq = perRequest(cpu[1]-cpu[0], closed.requests)
	r.cpuAtRate = perRequest(cpu[2]-cpu[1], open.requests)
	if open.requests > 0 && sw[2] >= sw[1] { // a thread that exited took its count with it
		r.swAtRate = float64(sw[2]-sw[1]) / float64(open.requests)
	}
	for i, p := range latencyPercentiles {
		r.lat[i] = float64(open.hist.percentile(p)) / float64(time.Millisecond)
	}
	for i, p := range lagPercentiles {
		r.lag[i] = float64(open.lag.percentile(p)) / float64(time.Millisecond)
	}
	// The warm-up's errors count too: a peer that fails requests while it
	// starts would fail them after a restart in production.
	r.errors = warm.errors + closed.errors + open.errors
	r.firstErr = cmp.Or(warm.firstErr, closed.firstErr, open.firstErr)
	d01, d12, d02 := diffCounts(counts[0], counts[1]), diffCounts(counts[1], counts[2]), diffCounts(counts[0], counts[2])
	if prim := d02[0].Primaries + d02[1].Primaries; prim > 0 {
		r.toService = float64(d02[1].Primaries) / float64(prim)
	}
	if closed.requests > 0 {
		r.shadowsSat = float64(d01[0].Shadows+d01[1].Shadows) / float64(closed.requests)
	}
	if open.requests > 0 {
		r.shadowsRate = float64(d12[0].Shadows+d12[1].Shadows) / float64(open.requests)
	}
	if in.proc != nil {
		var err error
		if r.hwmKB, err = groupMemKB(in.pgid, "VmHWM"); err != nil {
			return err
		}
	}
	return nil
}

// settle waits until the backends' counters stop moving, because a proxy
// may still be sending shadow copies it queued during a phase (their CPU
// then counts for that phase), and returns them. A proxy still busy after
// settleMax is measured as it is.
func (b *bench) settle(ctx context.Context) ([2]backendCounts, error) {
	prev, err := b.counts(ctx)
	if err != nil {
		return prev, err
	}
	for range int(settleMax / settlePoll) {
		select {
		case <-time.After(settlePoll):
		case <-ctx.Done():
			return prev, ctx.Err()
		}
		cur, err := b.counts(ctx)
		if err != nil || cur == prev {
			return cur, err
		}
		prev = cur
	}
	return prev, nil
}

// machineCPU returns the CPU time the whole machine has been busy (from
// /proc/stat), the part of it used by this harness, the backends and the
// peer (their difference over a cell is other work on the machine, which
// makes the figures noisy), and the part used by the load side alone: the
// harness and the backends, which share one CPU.
func (b *bench) machineCPU(in *instance) (busy, ours, load time.Duration, err error) {
	if busy, load, err = machineAndSelfCPU(); err != nil {
		return 0, 0, 0, err
	}
	for _, be := range b.backends {
		t, err := groupCPU(be.pgid())
		if err != nil {
			return 0, 0, 0, err
		}
		load += t
	}
	ours = load
	if in.proc != nil {
		t, err := groupCPU(in.pgid)
		if err != nil {
			return 0, 0, 0, err
		}
		ours += t
	}
	return busy, ours, load, nil
}

// machineAndSelfCPU returns the CPU time the whole machine has been busy
// (from /proc/stat) and the part this process used.
func machineAndSelfCPU() (busy, self time.Duration, err error) {
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	if busy, err = parseMachineBusy(string(st)); err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, err
	}
	ps, err := parseStat(string(b))
	if err != nil {
		return 0, 0, err
	}
	return busy, time.Duration(ps.ticks) * time.Second / clockTicks, nil
}

// perRequest returns cpu per request in µs; 0 for no requests.
func perRequest(cpu time.Duration, requests uint64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(cpu.Nanoseconds()) / 1e3 / float64(requests)
}

// diffCounts returns what both backends counted between two readings.
func diffCounts(before, after [2]backendCounts) [2]backendCounts {
	var d [2]backendCounts
	for i := range d {
		d[i] = backendCounts{Primaries: after[i].Primaries - before[i].Primaries, Shadows: after[i].Shadows - before[i].Shadows}
	}
	return d
}

// rateFor returns the open-loop rate of c's scenario: -rate when given,
// else half the reference peer's closed-loop throughput in the first run.
// When the reference peer has no figure (it failed, or was filtered out),
// the first peer measured in the scenario sets it instead, with a note.
func (b *bench) rateFor(c cell, rps float64) float64 {
	if b.opt.rate > 0 {
		b.rates[c.sc.name] = b.opt.rate // for the table's legend
		return b.opt.rate
	}
	if r, ok := b.rates[c.sc.name]; ok {
		return r
	}
	r := max(rps*ratePercent/100, 1)
	b.rates[c.sc.name] = r
	b.rateFrom[c.sc.name] = c.p.name
	if ref := referencePeer(b.peers); c.p.name != ref {
		fmt.Fprintf(os.Stderr, "note: %s: open-loop rate set from %s (%s has no figure)\n", c.sc.name, c.p.name, ref)
	}
	return r
}

// measureIdle opens the idle connections, one request each, and reads the
// peer's resident memory with them held.
func (b *bench) measureIdle(ctx context.Context, c cell, in *instance, r *cellResult) error {
	var err error
	if r.idleBase, err = groupMemKB(in.pgid, "VmRSS"); err != nil {
		return err
	}
	conns, err := holdIdle(ctx, in.addr, c.sc.path(), b.opt.idleConns, b.opt.conns)
	if err != nil {
		return err
	}
	defer closeAll(conns)
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.idleHeld, err = groupMemKB(in.pgid, "VmRSS"); err != nil {
		return err
	}
	r.hwmKB, err = groupMemKB(in.pgid, "VmHWM")
	return err
}

// counts reads both backends' request counters, monolith first.
func (b *bench) counts(ctx context.Context) ([2]backendCounts, error) {
	var out [2]backendCounts
	for i, addr := range []string{b.monolith, b.service} {
		var err error
		if out[i], err = readCounts(ctx, b.client, addr); err != nil {
			return out, fmt.Errorf("backend %s: %w", addr, err)
		}
	}
	return out, nil
}
