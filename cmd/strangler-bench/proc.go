//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (the kernel's HZ may
// differ, but what it exports to user space is scaled to USER_HZ).
const clockTicks = 100

// process is a child the harness started: a backend or a peer. Each runs in
// a process group of its own, so that stopping it also stops what it
// started (nginx's worker), and so that a Ctrl-C at the terminal reaches the
// harness alone, which then stops every group in order.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string        // the child's stdout and stderr
	done    chan struct{} // closed once the child has exited
	waitErr error         // valid after done
}

// running holds every process not yet stopped, for stopAll.
var running = struct {
	sync.Mutex
	procs map[*process]bool
}{procs: map[*process]bool{}}

// startProcess starts argv as name, pinned to CPU cpu with taskset when cpu
// ≥ 0, in a new process group, with stdout and stderr going to logPath and
// the environment env. The child is killed if the harness dies first
// (Pdeathsig), and stopAll stops it on Ctrl-C.
func startProcess(name string, cpu int, logPath string, env []string, argv ...string) (*process, error) {
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	// Appending lets a restarted child (the soak's service) keep one log.
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	running.Lock()
	running.procs[p] = true
	running.Unlock()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pgid is the process group of p and of everything it started.
func (p *process) pgid() int { return p.cmd.Process.Pid }

// exited reports whether p has exited, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop ends p's whole process group: SIGTERM, then SIGKILL to whatever is
// left after a grace period, and waits (bounded) for the group to be gone.
func (p *process) stop() {
	running.Lock()
	delete(running.procs, p)
	running.Unlock()
	_ = syscall.Kill(-p.pgid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.pgid(), syscall.SIGKILL)
	<-p.done
	for range 100 { // 2 s at most for workers to go
		if len(groupPIDs(p.pgid())) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends p's whole process group at once with SIGKILL, as a crash
// would, and waits (bounded) until p has exited.
func (p *process) kill() error {
	running.Lock()
	delete(running.procs, p)
	running.Unlock()
	_ = syscall.Kill(-p.pgid(), syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s: still running 5s after SIGKILL", p.name)
	}
}

// stopAll kills every process group still running: the Ctrl-C path, where
// speed matters more than grace.
func stopAll() {
	running.Lock()
	defer running.Unlock()
	for p := range running.procs {
		_ = syscall.Kill(-p.pgid(), syscall.SIGKILL)
		delete(running.procs, p)
	}
}

// logTail returns the last n lines p wrote, for an error message.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "(log is empty)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

// procStat is what the harness reads from /proc/PID/stat.
type procStat struct {
	state string // "R", "S", … "Z" for a zombie, which has no memory figures
	pgrp  int
	ticks uint64 // utime + stime, in clockTicks
}

// parseStat parses the contents of /proc/PID/stat. The command name, field
// 2, is in parentheses and may itself contain spaces and parentheses, so
// the fields are counted from the last ')'.
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no ')' after the command name")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("stat: %d fields after the command name, want ≥ 13", len(f))
	}
	pgrp, err := strconv.Atoi(f[5-3])
	if err != nil {
		return procStat{}, fmt.Errorf("stat: pgrp: %w", err)
	}
	utime, err := strconv.ParseUint(f[14-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[15-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: stime: %w", err)
	}
	return procStat{state: f[0], pgrp: pgrp, ticks: utime + stime}, nil
}

// parseStatusKB returns field (such as "VmHWM" or "VmRSS") of the contents
// of /proc/PID/status, in KiB.
func parseStatusKB(status, field string) (uint64, error) {
	rest, err := statusField(status, field)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(rest)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("status: %s: unexpected %q", field, rest)
	}
	return strconv.ParseUint(f[0], 10, 64)
}

// statusField returns what follows "field:" in the contents of a /proc
// status file.
func statusField(status, field string) (string, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		if name, rest, ok := strings.Cut(sc.Text(), ":"); ok && name == field {
			return rest, nil
		}
	}
	return "", fmt.Errorf("status: no %s", field)
}

// groupPIDs returns the processes of process group pgid: a peer's master
// and its workers.
func groupPIDs(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if st, err := parseStat(string(b)); err == nil && st.pgrp == pgid && st.state != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupCPU returns the CPU time (user + system) the live processes of
// process group pgid have used so far.
func groupCPU(pgid int) (time.Duration, error) {
	pids := groupPIDs(pgid)
	if len(pids) == 0 {
		return 0, fmt.Errorf("process group %d: no processes", pgid)
	}
	var ticks uint64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0, err
		}
		st, err := parseStat(string(b))
		if err != nil {
			return 0, err
		}
		ticks += st.ticks
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// groupSwitches returns the context switches, voluntary or not, that the
// threads of process group pgid have made so far. /proc/PID/status counts
// a process's main thread only, so every thread's is read; a thread that
// exits takes its count with it, which Go's and nginx's threads do not do
// while they serve. Unlike CPU time, the count does not depend on how fast
// a noisy machine runs, and at a fixed rate it shows what scheduling costs:
// each switch is a thread put to sleep and woken.
func groupSwitches(pgid int) (uint64, error) {
	pids := groupPIDs(pgid)
	if len(pids) == 0 {
		return 0, fmt.Errorf("process group %d: no processes", pgid)
	}
	var n uint64
	for _, pid := range pids {
		k, err := threadSwitches(pid)
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// threadSwitches sums the context switches of process pid's threads.
func threadSwitches(pid int) (uint64, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + t.Name() + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		k, err := parseSwitches(string(b))
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// parseSwitches returns voluntary_ctxt_switches + nonvoluntary_ctxt_switches
// of the contents of a /proc status file.
func parseSwitches(status string) (uint64, error) {
	var n uint64
	for _, field := range []string{"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
		rest, err := statusField(status, field)
		if err != nil {
			return 0, err
		}
		k, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status: %s: %w", field, err)
		}
		n += k
	}
	return n, nil
}

// groupMemKB sums field ("VmHWM": peak resident set; "VmRSS": current) over
// the processes of group pgid, in KiB. For nginx that is master + worker,
// and the pages they share are counted twice: at rest the sum is 13.5 MiB
// where the two map 10.2 MiB of distinct pages (counted from
// /proc/PID/pagemap, 2026-12-06), so nginx's figures read about 3 MiB
// high; the legend says so. A peak has no per-page equivalent, which is
// why the sum is kept.
func groupMemKB(pgid int, field string) (uint64, error) {
	pids := groupPIDs(pgid)
	if len(pids) == 0 {
		return 0, fmt.Errorf("process group %d: no processes", pgid)
	}
	var kb uint64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return 0, err
		}
		v, err := parseStatusKB(string(b), field)
		if err != nil {
			return 0, err
		}
		kb += v
	}
	return kb, nil
}

// parseMachineBusy returns the busy time of all CPUs from the contents of
// /proc/stat: the first line's user, nice, system, irq, softirq and steal
// (guest time is already in user; idle and iowait are not busy).
func parseMachineBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
