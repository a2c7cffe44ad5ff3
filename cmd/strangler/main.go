// Command strangler runs the Strangler proxy and its operator commands.
//
//	strangler serve    --config strangler.yaml
//	strangler validate --config strangler.yaml
//	strangler ramp     --config strangler.yaml ROUTE PERCENT
//	strangler demo
//	strangler version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strangler-proxy/strangler/flags"
	"github.com/strangler-proxy/strangler/proxy"
	"go.opentelemetry.io/otel"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or VCS revision is reported.
var version = ""

const usage = `strangler: a reverse proxy for strangler-fig migrations

Usage:
  strangler serve    --config FILE            run the proxy
                     [--log-format json|text] [--log-level debug|info|warn|error]
  strangler validate --config FILE            check config and flag file (exit 0 or 1)
  strangler ramp     --config FILE ROUTE PCT  set a route's percentage (0..100, or 25%) in the flag file
  strangler demo     [--listen ADDR] [--admin ADDR] [--percent PCT] [--requests N]
                                              run a built-in monolith and service behind the proxy
  strangler version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code, so tests can
// drive every command.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	if cmd == "help" || isHelp(cmd) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stdout, stderr)
	case "validate":
		err = validate(args, stdout, stderr)
	case "ramp":
		err = ramp(args, stdout, stderr)
	case "demo":
		err = demo(args, stdout, stderr)
	case "version", "--version", "-version":
		if slices.ContainsFunc(args, isHelp) {
			fmt.Fprintln(stdout, "Usage: strangler version")
			break
		}
		if len(args) > 0 {
			err = badArgs("version: unexpected argument %q", args[0])
			break
		}
		fmt.Fprintln(stdout, "strangler", buildVersion())
	default:
		fmt.Fprintf(stderr, "strangler: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // asked for: the flags' usage was printed
	}
	var ue usageError
	if errors.As(err, &ue) {
		if !ue.printed {
			fmt.Fprintf(stderr, "strangler: %v\n\n%s", err, usage)
		}
		return 2 // the flag package printed the problem and the usage
	}
	var ce *proxy.ConfigError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Fprintln(stderr, p)
		}
	} else {
		fmt.Fprintln(stderr, "strangler:", err)
	}
	return 1
}

// parseArgs parses flags wherever they stand among the positional
// arguments: operators type `ramp orders 25 --config x.yaml` as often as
// `ramp --config x.yaml orders 25`.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if len(args) > 0 && isNumber(args[0]) {
			// A negative number ("ramp orders -1") is an argument, for
			// its command to refuse, not an unknown flag.
			pos = append(pos, args[0])
			args = args[1:]
			continue
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err: err, printed: true}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	return err == nil
}

// usageError is a command line refused before anything was done: an
// unknown flag or a bad value (the flag package has printed why, with the
// usage), or arguments a command cannot take (badArgs). The exit code is
// 2, as for an unknown command.
type usageError struct {
	err     error
	printed bool
}

// badArgs is a usageError for arguments a command refuses itself.
func badArgs(format string, a ...any) error {
	return usageError{err: fmt.Errorf(format, a...)}
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// newFlagSet is the flag set of a command given args. Its usage, printed
// for --help and with a bad flag, starts with the command's synopsis:
// flag's default names only the flags, not ramp's ROUTE and PCT. Asked
// for, it goes to stdout (`strangler serve --help | less`); after a bad
// flag, to stderr with the error.
func newFlagSet(name, synopsis string, args []string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if slices.ContainsFunc(args, isHelp) {
			fs.SetOutput(stdout)
			defer fs.SetOutput(stderr)
		}
		fmt.Fprintf(fs.Output(), "Usage: strangler %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// isHelp reports whether arg asks for help as the flag package takes it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "strangler.yaml", "path of the YAML config file")
}

// loadChecked loads, validates and cross-checks a config, handing each
// warning to warn; any problem is an error and nothing starts. Except, when
// serving, a route's flag whose value cannot be a percentage: the route
// starts on the monolith (or, for its shadow flag, comparing nothing) and
// the flag's errors are counted, as a running
// proxy does when the flag file changes to it. A fleet shares one flag
// file, and a Pod restarted during a bad edit of it must not crash-loop
// while the others serve; validate still refuses it. A config with
// problems has the flags of its other routes checked too, so that one run
// names every problem.
func loadChecked(path string, serving bool, warn func(string)) (*proxy.Config, error) {
	cfg, err := proxy.LoadConfig(path)
	var ce *proxy.ConfigError
	if err != nil && (cfg == nil || !errors.As(err, &ce)) {
		return nil, inFile(path, err)
	}
	var problems []string
	if ce != nil {
		problems = ce.Problems
	}
	warnings, err := proxy.CheckAlongside(cfg, problems)
	for _, w := range warnings {
		warn(w)
	}
	var fe *proxy.ConfigError
	if serving && errors.As(err, &fe) && fe.FlagsOnly() {
		for _, p := range fe.Problems {
			switch {
			case strings.Contains(p, ".shadow.flag:"):
				warn(p + ": the route compares nothing until the flag is fixed")
			case strings.Contains(p, flags.ErrDuplicate.Error()):
				warn(p + ": the route follows the one in force, as flagd does")
			case strings.Contains(p, flags.ErrNoDefault.Error()):
				warn(p + ": requests no targeting rule places stay on the monolith until the flag is fixed")
			default:
				warn(p + ": the route stays on the monolith until the flag is fixed")
			}
		}
		err = nil
	}
	if errors.As(err, &fe) {
		problems = append(problems, fe.Problems...)
	} else if err != nil {
		return nil, inFile(path, err)
	}
	if len(problems) > 0 {
		return nil, inFile(path, &proxy.ConfigError{Problems: problems})
	}
	return cfg, nil
}

// inFile prefixes each problem of a config error with the file's path,
// as compilers do: an operator may be editing several.
func inFile(path string, err error) error {
	var ce *proxy.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	out := &proxy.ConfigError{Problems: make([]string, len(ce.Problems))}
	for i, p := range ce.Problems {
		out.Problems[i] = path + ": " + p
	}
	return out
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "--config FILE [--log-format json|text] [--log-level debug|info|warn|error]", args, stdout, stderr)
	path := configFlag(fs)
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return badArgs("serve: unexpected argument %q", pos[0])
	}
	// SIGHUP's default action ends the process: caught from the start
	// (while the config loads or a flagd daemon is slow to answer) to the
	// very end (while the drain and the exit run), and only acted on
	// while serving. Ignored, not stopped, on the way out: signal.Stop
	// would restore the default action for the moments before the exit.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Ignore(syscall.SIGHUP)
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	// What net/http logs through the standard logger goes to the same
	// log, in its format.
	stdlog.SetFlags(0)
	stdlog.SetOutput(proxy.LogWriter(log, slog.LevelWarn))
	defer stdlog.SetOutput(os.Stderr)
	// Logged, not printed: the log may be JSON a collector parses.
	cfg, err := loadChecked(*path, true, func(w string) { log.Warn("config: " + w) })
	if err != nil {
		return err
	}
	// The first SIGINT or SIGTERM drains (up to shutdown_timeout); a
	// second one closes what is left at once.
	term := make(chan os.Signal, 2)
	signal.Notify(term, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(term)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	aborted := make(chan struct{})
	go func() {
		select {
		case <-term:
			stop()
		case <-ctx.Done():
			return
		}
		<-term
		log.Warn("second signal: closing requests in flight now")
		close(aborted)
	}()
	return runServer(ctx, cfg, *path, log, hup, aborted)
}

// runServer listens, serves until ctx ends, and shuts down. It reloads the
// config file on SIGHUP (hup) and when the file changes. Once aborted is
// closed (a second signal, whenever it comes) the drain and the exit's
// wait stop at once.
func runServer(ctx context.Context, cfg *proxy.Config, path string, log *slog.Logger, hup <-chan os.Signal, aborted <-chan struct{}) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	admin, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin_listen: %w", err)
	}
	// After the drain, the comparisons in flight and the last spans get
	// ExitGrace between them, whatever their own timeouts: the
	// deployment's grace period counts on it. exit is set once Serve
	// returns.
	exit := context.Background()
	// The SDK's own errors (an OTEL_* setting it cannot use, an export
	// that failed) go to the log, not as a plain line on stderr: set
	// before the provider is built, which reports the settings' errors.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	tp, prop, stopTracing, err := setupTracing(ctx)
	if err != nil {
		ln.Close()
		admin.Close()
		return err
	}
	defer func() { stopTracing(exit) }()
	opts := proxy.Options{Logger: log}
	if tp != nil {
		opts.TracerProvider, opts.Propagator = tp, prop
		log.Info("tracing on")
	}
	s, err := proxy.New(ctx, cfg, opts)
	if err != nil {
		ln.Close()
		admin.Close()
		return err
	}
	defer func() { s.Close(exit) }()
	// Watched from here, not by the signal's goroutine: a second signal
	// that came while the server was being built still aborts its drain
	// (Abort before Serve holds for the shutdown to come).
	served := make(chan struct{})
	defer close(served)
	go func() {
		select {
		case <-aborted:
			s.Abort()
		case <-served:
		}
	}()

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go s.WatchConfig(watchCtx, path, time.Second)
	go func() {
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-hup:
				s.ReloadFile(path) // logged and counted
			}
		}
	}()
	err = s.Serve(ctx, ln, admin)
	exit = exitContext(aborted)
	return err
}

// exitContext ends proxy.ExitGrace from now, or when aborted is closed (a
// second signal, before or during the exit): the operator asked for an
// exit now, so the comparisons in flight and the last spans are not
// waited for.
func exitContext(aborted <-chan struct{}) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), proxy.ExitGrace)
	go func() {
		select {
		case <-aborted:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx
}

func validate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("validate", "--config FILE", args, stdout, stderr)
	path := configFlag(fs)
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return badArgs("validate: unexpected argument %q", pos[0])
	}
	cfg, err := loadChecked(*path, false, func(w string) { fmt.Fprintln(stderr, "warning:", w) })
	if err != nil {
		return err
	}
	routes := "routes"
	if len(cfg.Routes) == 1 {
		routes = "route"
	}
	fmt.Fprintf(stdout, "%s: ok (%d %s)\n", *path, len(cfg.Routes), routes)
	return nil
}

func ramp(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ramp", "--config FILE ROUTE PCT\n\nsets route ROUTE to PCT percent (0..100, or 25%) in its flag file", args, stdout, stderr)
	path := configFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return badArgs("ramp: want ROUTE PERCENT, e.g. strangler ramp --config strangler.yaml orders 25")
	}
	name := pos[0]
	pct, ok := parsePercent(pos[1])
	if !ok {
		return badArgs("ramp: percent %q: want a number from 0 to 100", pos[1])
	}
	// Problems elsewhere in the config do not block a ramp (RampTarget).
	cfg, lerr := proxy.LoadConfig(*path)
	var ce *proxy.ConfigError
	if lerr != nil && (cfg == nil || !errors.As(lerr, &ce)) {
		return lerr
	}
	var problems []string
	if ce != nil {
		problems = ce.Problems
	}
	flagFile, flagName, err := proxy.RampTarget(cfg, problems, name)
	if err != nil {
		if ce != nil {
			// Why the ramp cannot go on, then every problem, as validate
			// prints them (one of them is in the way).
			fmt.Fprintf(stderr, "strangler: ramp: %s: %v\n", *path, err)
			return inFile(*path, lerr)
		}
		return fmt.Errorf("ramp: %s: %w", *path, err)
	}
	for _, p := range problems {
		if at, ok := strings.CutPrefix(p, "admin_token_file: "); ok && strings.Contains(at, `" does not exist`) {
			// A ramp of the files a Kubernetes Deployment is made from runs
			// where the Pod's Secret is not mounted; the token is not the
			// ramp's business, and a warning here would alarm at 3 AM.
			fmt.Fprintf(stderr, "strangler: ramp: note: %s: %s (where the proxy runs, it must; a ramp does not use it)\n", *path,
				strings.Replace(p, `" does not exist`, `" does not exist on this machine`, 1))
			continue
		}
		fmt.Fprintf(stderr, "strangler: ramp: warning: %s: %s (a proxy that finds this problem too refuses this config and keeps serving its previous version; the flag is set all the same)\n", *path, p)
	}
	old, note, err := flags.Ramp(flagFile, flagName, pct)
	if err != nil {
		return fmt.Errorf("ramp: %w", err)
	}
	fmt.Fprintf(stdout, "%s: %s -> %s\n", name, fmtPercent(old), fmtPercent(pct))
	if note != "" {
		fmt.Fprintf(stderr, "strangler: ramp: note: %s\n", note)
	}
	if sent := math.Round(pct*proxy.Buckets/100) / (proxy.Buckets / 100); sent != pct {
		// The flag keeps what was typed; the split rounds it.
		fmt.Fprintf(stderr, "strangler: ramp: note: the split works in steps of %s %%: %s %% sends %s %% of users\n",
			fmtPercent(100.0/proxy.Buckets), fmtPercent(pct), fmtPercent(sent))
	}
	return nil
}

func fmtPercent(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// parsePercent reads a percentage as an operator types one: decimal
// digits with at most one point, and an optional "%" ("25", "2.5",
// "25%"). strconv alone would also take "1e1", "0x1p4", "+5" and "-0",
// which at 3 AM are more likely slips than meant.
func parsePercent(s string) (float64, bool) {
	digits := strings.TrimSuffix(s, "%")
	if digits == "" || digits == "." || strings.Count(digits, ".") > 1 ||
		strings.TrimLeft(digits, "0123456789.") != "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(digits, 64)
	return v, err == nil && v <= 100
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, badArgs("--log-level: %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, badArgs("--log-format: %q: want json or text", format)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return "devel-" + s.Value
		}
	}
	return "devel"
}
