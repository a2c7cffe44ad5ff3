package flags

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// The two ways a Source can use a flagd daemon (see the package doc).
const (
	// ModeInProcess syncs the whole flag set from the daemon's sync
	// service and evaluates locally, as with a file.
	ModeInProcess = "in-process"
	// ModeRPC asks the daemon's evaluation service for every evaluation
	// that cannot be cached.
	ModeRPC = "rpc"
)

// FlagdOptions names a flagd daemon to take the flags from. The connection
// is plaintext gRPC (in-process) or Connect over HTTP/1.1 (rpc).
type FlagdOptions struct {
	// Host is the daemon's host name or IP address.
	Host string
	// Port is the daemon's sync port in in-process mode (0 means 8015) or
	// its evaluation port in rpc mode (0 means 8013).
	Port uint16
	// Mode is ModeInProcess or ModeRPC; "" means ModeInProcess.
	Mode string
	// Selector, if set, asks the daemon for one flag source or flag set
	// only (flagd's "selector"), sent as the flagd-selector header.
	Selector string
	// Timeout bounds one evaluation over the network in rpc mode.
	// 0 means 500 ms, flagd's default.
	Timeout time.Duration
	// RetryBackoff and RetryBackoffMax bound the wait between attempts to
	// reach the daemon, at startup and after it went away; the wait
	// doubles from one to the other. 0 means 1 s and 12 s, flagd's
	// defaults. In rpc mode the same waits space the retries of a
	// re-evaluation of the flags that did not reach the daemon.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
}

// DefaultPort is flagd's port for mode: its sync service (8015) in
// in-process mode, its evaluation service (8013) in rpc mode.
func DefaultPort(mode string) uint16 {
	if mode == ModeRPC {
		return 8013
	}
	return 8015
}

// tcpKeepAlive is the idle time before TCP keepalive probes start on a
// connection to the daemon, and the time between probes. A daemon that
// vanished without closing the connection (host gone, network cut) is
// noticed after the idle time and 9 unanswered probes (Linux's default
// count): about 2.5 minutes. It is Go's default, made explicit because
// grpc-go does not use Go's default.
const tcpKeepAlive = 15 * time.Second

const (
	defaultStartTimeout    = 5 * time.Second
	defaultEvalTimeout     = 500 * time.Millisecond
	defaultRetryBackoff    = time.Second
	defaultRetryBackoffMax = 12 * time.Second
)

// withDefaults checks o and fills in its defaults.
func (o FlagdOptions) withDefaults() (FlagdOptions, error) {
	if o.Mode == "" {
		o.Mode = ModeInProcess
	}
	if o.Mode != ModeInProcess && o.Mode != ModeRPC {
		return o, fmt.Errorf("mode is %q, want %q or %q", o.Mode, ModeRPC, ModeInProcess)
	}
	if o.Host == "" {
		return o, errors.New("no host")
	}
	if o.Timeout < 0 || o.RetryBackoff < 0 || o.RetryBackoffMax < 0 {
		return o, errors.New("negative timeout or retry backoff")
	}
	if o.Port == 0 {
		o.Port = DefaultPort(o.Mode)
	}
	if o.Timeout == 0 {
		o.Timeout = defaultEvalTimeout
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = defaultRetryBackoff
	}
	if o.RetryBackoffMax == 0 {
		o.RetryBackoffMax = defaultRetryBackoffMax
	}
	o.RetryBackoffMax = max(o.RetryBackoffMax, o.RetryBackoff)
	return o, nil
}

// addr is the daemon's host:port.
func (o FlagdOptions) addr() string {
	return net.JoinHostPort(o.Host, strconv.Itoa(int(o.Port)))
}

func openFlagd(ctx context.Context, opts Options) (*Source, error) {
	o, err := opts.Flagd.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("flags: flagd: %w", err)
	}
	start := opts.StartTimeout
	if start <= 0 {
		start = defaultStartTimeout
	}
	if o.Mode == ModeRPC {
		return openRPC(ctx, opts, o, start)
	}
	return openDaemonSync(ctx, opts, o, start)
}

// backoff yields the waits between attempts: base, doubling up to most.
type backoff struct{ base, most, next time.Duration }

func newBackoff(base, most time.Duration) backoff { return backoff{base, most, base} }

func (b *backoff) reset() { b.next = b.base }

func (b *backoff) wait() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.most)
	return d
}

// lastTry is how long before ctx's deadline retry makes its last attempt:
// a connect to a daemon that is up takes milliseconds.
const lastTry = 250 * time.Millisecond

// dialSettle is how long an attempt in in-process mode waits for gRPC's
// dial to a daemon it had failed to reach (see daemonSync.open).
const dialSettle = 200 * time.Millisecond

// retry calls open until it succeeds or ctx is done, waiting b between
// attempts; the first attempt is at once. With a deadline on ctx (the
// start window), the last attempt is made just before it, not a whole
// backoff after the one before: with waits of 1, 2 and 4 s, a flagd
// sidecar up 3.5 s into a 5 s start was never tried again, and the Pod
// crash-looped. It returns nil or the cause of the last failure that was
// not ctx ending (if any).
func retry(ctx context.Context, b *backoff, open func(context.Context) error) error {
	b.reset()
	var last error
	for {
		err := open(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		d := b.wait()
		if dl, ok := ctx.Deadline(); ok {
			left := time.Until(dl) - lastTry
			if left <= 0 {
				// That was the last attempt.
				<-ctx.Done()
				return last
			}
			d = min(d, left)
		}
		if !sleep(ctx, d) {
			return last
		}
	}
}

// sleep waits d or until ctx is done, and reports whether it waited.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
