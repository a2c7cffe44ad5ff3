//go:build linux

package main

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// A real line from nginx's worker, and a name with spaces and parentheses.
	for _, tc := range []struct {
		line  string
		want  procStat
		fails bool
	}{
		{
			line: "4242 (nginx) S 4241 4241 4241 0 -1 4194624 1234 0 0 0 1500 230 0 0 20 0 1 0 8000 12345678 900 18446744073709551615 1 1 0 0 0 0 0 16781312 402653184 0 0 0 17 0 0 0 0 0 0",
			want: procStat{state: "S", pgrp: 4241, ticks: 1730},
		},
		{
			line: "77 (a b) (c)) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			want: procStat{state: "R", pgrp: 77, ticks: 10},
		},
		{line: "78 (zombie) Z 1 70 70 0 -1 0 0 0 0 0 0 0", want: procStat{state: "Z", pgrp: 70}},
		{line: "79 (short) S 1 70 70", fails: true},
		{line: "no parenthesis", fails: true},
		{line: "1 (x) S 1 x 1 0 -1 0 0 0 0 0 7 3 0 0", fails: true},
	} {
		got, err := parseStat(tc.line)
		if tc.fails {
			if err == nil {
				t.Errorf("parseStat(%q) = %+v, want an error", tc.line, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	t.Parallel()
	status := strings.Join([]string{
		"Name:\tstrangler",
		"State:\tS (sleeping)",
		"VmPeak:\t 1300000 kB",
		"VmHWM:\t   35120 kB",
		"VmRSS:\t   34000 kB",
		"Threads:\t5",
	}, "\n")
	if got, err := parseStatusKB(status, "VmHWM"); err != nil || got != 35120 {
		t.Errorf("VmHWM = %d, %v; want 35120", got, err)
	}
	if got, err := parseStatusKB(status, "VmRSS"); err != nil || got != 34000 {
		t.Errorf("VmRSS = %d, %v; want 34000", got, err)
	}
	if _, err := parseStatusKB(status, "VmSwap"); err == nil {
		t.Error("VmSwap: want an error for a missing field")
	}
	if _, err := parseStatusKB("VmHWM:\t12 MB\n", "VmHWM"); err == nil {
		t.Error("want an error for a unit other than kB")
	}
}

func TestParseCPUModel(t *testing.T) {
	t.Parallel()
	in := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n"
	if got := parseCPUModel(strings.NewReader(in)); got != "AMD EPYC 7B13" {
		t.Errorf("got %q", got)
	}
	if got := parseCPUModel(strings.NewReader("processor : 0\n")); got != "unknown CPU" {
		t.Errorf("no model: got %q", got)
	}
}

func TestParseMachineBusy(t *testing.T) {
	t.Parallel()
	stat := "cpu  100 5 50 9000 40 3 2 1 7 0\ncpu0 50 2 25 4500 20 1 1 0 3 0\nintr 1\n"
	got, err := parseMachineBusy(stat)
	if want := 161 * time.Second / clockTicks; err != nil || got != want { // 100+5+50+3+2+1
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	if _, err := parseMachineBusy("intr 1\n"); err == nil {
		t.Error("want an error without a cpu line")
	}
}

func TestParseSwitches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status string
		want   uint64
		ok     bool
	}{
		{"Name:\tstrangler\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n", 127, true},
		{"voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0", 0, true},
		{"voluntary_ctxt_switches:\t120\n", 0, false},
		{"voluntary_ctxt_switches:\tmany\nnonvoluntary_ctxt_switches:\t7\n", 0, false},
		{"Name:\tstrangler\n", 0, false},
	} {
		got, err := parseSwitches(tc.status)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSwitches(%q) = %d, %v; want %d, ok %v", tc.status, got, err, tc.want, tc.ok)
		}
	}
}

// TestThreadSwitchesCountsEveryThread makes a thread other than the main
// one switch context 50 times, and checks that the count grows by at least
// that much more than the main thread's, which is all /proc/PID/status
// would say.
func TestThreadSwitchesCountsEveryThread(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	mainOnly := func() uint64 {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		n, err := parseSwitches(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	all, err := threadSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	mainBefore := mainOnly()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // a thread of its own, which each sleep parks
		defer runtime.UnlockOSThread()
		for range 50 {
			time.Sleep(time.Millisecond)
		}
	}()
	<-done
	all2, err := threadSwitches(pid)
	if err != nil {
		t.Fatal(err)
	}
	if grew, mainGrew := all2-all, mainOnly()-mainBefore; grew < mainGrew+50 {
		t.Errorf("all threads' switches grew by %d, the main thread's by %d: the sleeping thread's 50 are missing", grew, mainGrew)
	}
	if _, err := groupSwitches(1 << 30); err == nil {
		t.Error("a process group with no processes: want an error")
	}
}
