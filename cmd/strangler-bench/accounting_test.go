//go:build linux

package main

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// groupCPU sums every live process of the group (nginx: master and
// worker), user and system time, converted from clock ticks. The kernel's
// own account, wait4's rusage of the group's leader (which includes the
// children it waited for), is the reference: read while the children are
// stopped, both must agree.
func TestGroupCPUAgreesWithTheKernelsAccount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	// One child burns user time, the other system time.
	script := `yes >/dev/null & Y=$!
dd if=/dev/zero of=/dev/null bs=1 2>/dev/null & D=$!
sleep 1
kill -STOP $Y $D
touch ` + ready + `
sleep 1
kill -KILL $Y $D
wait`
	p, err := startProcess("accounting", -1, filepath.Join(dir, "log"), os.Environ(), "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the children never stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := groupCPU(p.pgid())
	if err != nil {
		t.Fatal(err)
	}
	<-p.done
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	want := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// Clock ticks are 10 ms; three processes round down by up to one each.
	if d := got - want; d < -60*time.Millisecond || d > 60*time.Millisecond {
		t.Errorf("groupCPU %v, the kernel's account of the group %v (user %v, system %v)",
			got, want, time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()))
	}
}

func TestPerRequestIsMicroseconds(t *testing.T) {
	t.Parallel()
	if got := perRequest(2*time.Second, 100_000); got != 20 {
		t.Errorf("2 s over 100,000 requests = %v µs, want 20", got)
	}
	if got := perRequest(time.Second, 0); got != 0 {
		t.Errorf("no requests: %v, want 0", got)
	}
}

// groupMemKB sums its field over the group's processes (nginx's master and
// worker), not the first one found.
func TestGroupMemSumsTheGroup(t *testing.T) {
	t.Parallel()
	p, err := startProcess("accounting", -1, filepath.Join(t.TempDir(), "log"), os.Environ(), "sh", "-c", "sleep 30 & sleep 30 & wait")
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	// The group is stable once it has three processes whose VmHWM does
	// not move between two readings: a child between fork and exec has
	// the shell's memory, and one just past exec still grows as sleep
	// loads. groupMemKB's reading is taken between the two.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := groupPIDs(p.pgid())
		before, biggest := hwmSum(t, pids)
		got, err := groupMemKB(p.pgid(), "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		after, _ := hwmSum(t, groupPIDs(p.pgid()))
		if len(pids) == 3 && before == after {
			if got != before || got <= biggest {
				t.Errorf("groupMemKB %d KiB; the processes' sum %d, the biggest %d", got, before, biggest)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group never settled: %d processes, VmHWM summed %d then %d KiB", len(pids), before, after)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hwmSum sums the processes' VmHWM and gives the biggest.
func hwmSum(t *testing.T, pids []int) (sum, biggest uint64) {
	t.Helper()
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseStatusKB(string(b), "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		sum += v
		biggest = max(biggest, v)
	}
	return sum, biggest
}

// Every request of the schedule is answered or an error: sends that never
// return before the deadline leave their requests errors, however the
// total divides among the workers, and the requests the pacer never sent
// are errors too.
func TestOpenLoopAccountsForEveryRequest(t *testing.T) {
	t.Parallel()
	for _, total := range []int{11, 12, 13} {
		var n atomic.Int64
		res := openLoop(context.Background(), 4, 100, time.Duration(total)*10*time.Millisecond, 100*time.Millisecond,
			func(ctx context.Context, _ *rand.Rand) error {
				if n.Add(1)%3 == 0 {
					return nil
				}
				<-ctx.Done()
				return ctx.Err()
			})
		if got := res.requests + res.errors; got != uint64(total) {
			t.Errorf("total %d: %d answered + %d errors = %d", total, res.requests, res.errors, got)
		}
	}
}

// The histogram's percentiles against the exact nearest-rank percentiles
// of the same values, recorded by several workers and merged as the load
// does: never below, and above by no more than a bucket's width.
func TestPercentilesAgreeWithExactNearestRank(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := 1 + rng.IntN(20000)
		vals := make([]time.Duration, n)
		var hs [8]histogram
		for i := range vals {
			v := time.Duration(rng.ExpFloat64() * float64(time.Millisecond) * float64(1+trial%5))
			if rng.IntN(100) == 0 {
				v *= 50 // a tail
			}
			vals[i] = v
			hs[rng.IntN(len(hs))].record(v)
		}
		var h histogram
		for i := range hs {
			h.merge(&hs[i])
		}
		slices.Sort(vals)
		for _, p := range []float64{50, 90, 99, 99.9} {
			rank := int(math.Ceil(p / 100 * float64(n) * (1 - 1e-12)))
			exact := vals[max(rank, 1)-1]
			got := h.percentile(p)
			if got < exact || float64(got-exact) > float64(exact)/64+1 {
				t.Errorf("n=%d p%v: histogram %v, exact %v", n, p, got, exact)
			}
		}
	}
}
