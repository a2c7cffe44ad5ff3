//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	duration  time.Duration // of each measured phase (closed loop, open loop) of a cell
	runs      int
	scenarios []scenario
	peers     []string
	allPeers  bool // -peers all: the floors run floorScenarios only
	out       string
	conns     int
	rate      float64 // open-loop rate; 0: half the reference peer's throughput
	idleConns int
	strangler string // prebuilt binary; "": build one
	soak      time.Duration
	godebug   string // GODEBUG of the Go peers (Strangler and the floors); "": none
}

// main runs the harness, or a backend when re-executed as one.
func main() {
	if len(os.Args) > 1 && os.Args[1] == backendFlag {
		backendMain(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == floorFlag {
		floorMain(os.Args[2:])
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// parseOptions parses the command line.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var opt options
	fs := flag.NewFlagSet("strangler-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./cmd/strangler-bench [flags]\n\n"+
			"Measures Strangler against nginx, HAProxy and no proxy at all on loopback,\n"+
			"one CPU each, and prints a markdown table. Run from inside the module.")
		fs.PrintDefaults()
	}
	fs.DurationVar(&opt.duration, "duration", 3500*time.Millisecond, "length of each measured phase (closed loop, then open loop) of every run")
	fs.IntVar(&opt.runs, "runs", 3, "runs of every configuration, interleaved")
	scs := fs.String("scenarios", "all", "comma-separated scenarios (plain-1k, plain-64k, split-1k, split-64k, shadow-1k, shadow-64k, idle) or kinds (plain, split, shadow, idle)")
	peers := fs.String("peers", "all", "comma-separated peers: direct, strangler, nginx, haproxy, and the floors go-nethttp and go-net (with all, the floors run "+strings.Join(floorScenarios, " and ")+" only)")
	fs.StringVar(&opt.out, "out", "", "also write the table to this file")
	fs.IntVar(&opt.conns, "conns", 64, "keep-alive connections of the load")
	fs.Float64Var(&opt.rate, "rate", 0, "open-loop requests/s (default: 50 % of nginx's closed-loop throughput in the first run, or Strangler's without nginx; with -soak, 2000)")
	fs.IntVar(&opt.idleConns, "idle-conns", 1000, "idle keep-alive connections held in the idle scenario")
	fs.StringVar(&opt.strangler, "strangler", "", "a prebuilt strangler binary (default: go build ./cmd/strangler once)")
	fs.StringVar(&opt.godebug, "godebug", "", "GODEBUG for the Go peers only (strangler, go-nethttp, go-net; not the backends), e.g. schedtrace=2147483647 to keep Go's sysmon thread from parking between requests (cmd/strangler-bench/PERFORMANCE.md)")
	fs.DurationVar(&opt.soak, "soak", 0, "soak mode: Strangler alone for this long (after a 30s warm-up) at -rate, while the service is killed, fails and resets, the flag ramps and the config reloads; prints a table and exits 1 if a goal is missed (see doc.go)")
	if err := fs.Parse(args); err != nil {
		return opt, err
	}
	if fs.NArg() > 0 {
		return opt, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if opt.scenarios, err = selectScenarios(*scs); err != nil {
		return opt, err
	}
	if opt.peers, err = selectPeers(*peers); err != nil {
		return opt, err
	}
	opt.allPeers = *peers == "" || *peers == "all"
	switch {
	case opt.duration < 100*time.Millisecond || opt.duration > time.Hour:
		return opt, errors.New("-duration: want 100ms to 1h")
	case opt.runs < 1 || opt.runs > 100:
		return opt, errors.New("-runs: want 1 to 100")
	case opt.conns < 1 || opt.conns > 4096:
		return opt, errors.New("-conns: want 1 to 4096")
	case opt.idleConns < 1 || opt.idleConns > 10000:
		return opt, errors.New("-idle-conns: want 1 to 10000")
	case opt.rate < 0:
		return opt, errors.New("-rate: must not be negative")
	case opt.soak != 0 && (opt.soak < time.Minute || opt.soak > 24*time.Hour):
		return opt, errors.New("-soak: want 1m to 24h")
	}
	if err := checkGodebug(opt.godebug); err != nil {
		return opt, fmt.Errorf("-godebug: %w", err)
	}
	return opt, nil
}

// run is the whole harness; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	opt, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintln(stderr, "strangler-bench:", err)
		return 2
	}
	if opt.soak > 0 {
		return runSoak(opt, stdout, stderr)
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer stopAll() // whatever happens below, no child outlives the harness
	onInterrupt(cancel, stderr)

	keep := false // the temporary folder, when a log in it explains a failure
	b, cells, err := setup(ctx, opt, stderr)
	if b != nil {
		defer func() {
			if keep {
				fmt.Fprintln(stderr, "configs and logs kept in", b.dir)
			} else {
				os.RemoveAll(b.dir)
			}
		}()
		defer b.stopBackends()
	}
	if err != nil {
		fmt.Fprintln(stderr, "strangler-bench:", err)
		keep = true
		return 1
	}
	b.run(ctx, cells)

	rep := report{header: header(ctx, opt, b.peers), scenarios: opt.scenarios, peers: b.peers,
		results: b.results, rates: b.rates, idleConns: opt.idleConns, conns: opt.conns}
	table := rep.markdown()
	if ctx.Err() != nil {
		table = "**Interrupted: partial results.**\n\n" + table
	}
	fmt.Fprint(stdout, "\n"+table)
	code := 0
	if opt.out != "" {
		if err := os.WriteFile(opt.out, []byte(table), 0o644); err != nil {
			fmt.Fprintln(stderr, "strangler-bench:", err)
			code = 1
		}
	}
	for _, r := range b.results {
		if r.err != "" {
			code, keep = 1, true
		}
	}
	if ctx.Err() != nil {
		code = 130
	}
	fmt.Fprintf(stderr, "total runtime %v\n", time.Since(began).Round(time.Second))
	return code
}

// onInterrupt cancels the run at the first SIGINT or SIGTERM, so that it
// stops its children in order and reports what it has, and kills every
// child and exits at the second.
func onInterrupt(cancel context.CancelFunc, stderr io.Writer) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(stderr, "\ninterrupted: stopping the peers and the backends (again to kill them at once)")
		cancel()
		<-sigs
		stopAll()
		os.Exit(130)
	}()
}

// setup pins the harness to the load CPU, finds and builds the peers,
// prints the plan and its estimate, and starts the backends. The returned
// bench, when not nil, owns a temporary folder and the backends even when
// err is set.
func setup(ctx context.Context, opt options, stderr io.Writer) (*bench, []cell, error) {
	if runtime.NumCPU() < 2 {
		return nil, nil, fmt.Errorf("needs 2 CPUs (one for the proxy, one for the load), have %d", runtime.NumCPU())
	}
	if err := pinSelf(ctx, loadCPU); err != nil {
		return nil, nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "strangler-bench-")
	if err != nil {
		return nil, nil, err
	}
	b := &bench{
		opt: opt, dir: dir, env: childEnv(), scenarios: opt.scenarios,
		client:   &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second},
		rates:    map[string]float64{},
		rateFrom: map[string]string{},
	}
	if slices.Contains(opt.peers, peerStrangler) && opt.strangler == "" {
		fmt.Fprintln(stderr, "building ./cmd/strangler …")
	}
	b.peers = discoverPeers(ctx, opt.peers, opt.allPeers, self, dir, opt.strangler)
	for _, p := range b.peers {
		if p.missing != "" {
			fmt.Fprintf(stderr, "%s: %s: reported as such in the table\n", p.name, p.missing)
		}
	}
	cells := plan(opt.scenarios, b.peers, opt.runs)
	if len(cells) == 0 {
		return b, nil, errors.New("nothing to measure: every selected peer is missing or cannot run the selected scenarios")
	}
	fmt.Fprintf(stderr, "plan: %d cells (%s), %v per measured phase: estimated %v\n",
		len(cells), plural(opt.runs, "run"), opt.duration, estimate(cells, opt.duration).Round(time.Second))
	if err := b.startBackends(ctx, self); err != nil {
		return b, nil, err
	}
	return b, cells, nil
}

// pinSelf moves every thread of the harness to cpu (taskset -a) and gives
// the Go scheduler one P, so that the load generator never runs on the
// proxy's CPU. Threads created later inherit the affinity.
func pinSelf(ctx context.Context, cpu int) error {
	out, err := exec.CommandContext(ctx, "taskset", "-a", "-p", "-c", strconv.Itoa(cpu), strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset (util-linux) is needed to pin processes to CPUs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	runtime.GOMAXPROCS(1)
	return nil
}

// header returns the README-ready lines above the table: date, machine,
// versions, and how the CPUs were shared.
func header(ctx context.Context, opt options, peers []*peer) []string {
	versions := []string{runtime.Version()}
	for _, p := range peers {
		switch {
		case p.version != "":
			versions = append(versions, p.name+" "+strings.TrimPrefix(strings.TrimPrefix(p.version, p.name+"/"), "strangler "))
		case p.missing != "":
			versions = append(versions, p.name+" ("+p.missing+")")
		}
	}
	return []string{
		fmt.Sprintf("**strangler-bench** %s · nproc %d · %s · %s",
			time.Now().Format("2006-01-02"), runtime.NumCPU(), cpuModel(), strings.Join(versions, " · ")),
		"",
		fmt.Sprintf("Each proxy on one CPU (`taskset -c %d`; GOMAXPROCS=1%s, worker_processes 1, nbthread 1); load generator and backends on the other (`taskset -c %d`). "+
			"Per cell: %v closed loop, then %v open loop; %s interleaved; median (min–max).",
			proxyCPU, godebugNote(opt.godebug), loadCPU, opt.duration, opt.duration, plural(opt.runs, "run")),
	}
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	return parseCPUModel(f)
}

// parseCPUModel returns the first "model name" value of a /proc/cpuinfo.
func parseCPUModel(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// plural returns "1 run", "3 runs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
