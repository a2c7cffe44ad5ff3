package flags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"buf.build/gen/go/open-feature/flagd/grpc/go/flagd/sync/v1/syncv1grpc"
	syncv1 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/sync/v1"
	isync "github.com/open-feature/flagd/core/pkg/sync"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// daemonSync feeds flagd's in-process evaluator from a flagd daemon's sync
// service (flagd.sync.v1.FlagSyncService/SyncFlags: a stream that carries
// the whole flag set at once and again after every change).
//
// It replaces the provider's own gRPC sync, as fileSync replaces its file
// sync:
//   - every flag set is validated like a flag file before flagd sees it,
//     and a bad one keeps the last good flags and is reported;
//   - we see each set, so the cache of every handle is refreshed exactly
//     when the provider has applied it, and OnChange fires then;
//   - a lost connection is reported once with its cause, and reconnection
//     follows RetryBackoff..RetryBackoffMax; the provider's sync waits for
//     gRPC's default reconnect backoff, which grows to 2 minutes;
//   - the provider's sync, in v0.6.0, races under -race as soon as the
//     daemon goes away: its event monitor resets a sync.Once that the data
//     listener uses concurrently (service.go:239 against :306).
type daemonSync struct {
	handoff
	origin   string // for logs and errors
	addr     string
	selector string
	log      *slog.Logger
	backoff  backoff
	conn     *grpc.ClientConn
	client   syncv1grpc.FlagSyncServiceClient

	// Owned by Open, then by the Sync goroutine.
	stream       grpc.ServerStreamingClient[syncv1.SyncFlagsResponse]
	cancelStream context.CancelFunc
	seen         string // last flag set received, good or bad
	lost         bool   // the connection was lost; the next set is the first after it
}

var _ isync.ISync = (*daemonSync)(nil)

// openDaemonSync connects to the daemon, waits up to start for a valid
// flag set, and starts the provider on it.
func openDaemonSync(ctx context.Context, opts Options, o FlagdOptions, start time.Duration) (*Source, error) {
	s := newSource(opts, fmt.Sprintf("flagd at %s (%s)", o.addr(), ModeInProcess))
	d, err := newDaemonSync(o, s.origin, s.log, s.reloaded, s.rejected)
	if err != nil {
		return nil, fmt.Errorf("flags: %s: %w", s.origin, err)
	}
	data, file, err := d.first(ctx, start)
	if err != nil {
		d.stop()
		_ = d.conn.Close()
		return nil, fmt.Errorf("flags: %s: %w", s.origin, err)
	}
	s.file = file
	d.live.Store(&data)
	s.updates = d
	if err := s.startInProcess(ctx, d, d.uri); err != nil {
		// Shutdown has stopped Sync if it ran; if not, nobody else will.
		d.stop()
		_ = d.conn.Close()
		return nil, fmt.Errorf("flags: %s: flagd provider: %w", s.origin, err)
	}
	return s, nil
}

func newDaemonSync(o FlagdOptions, origin string, log *slog.Logger, reloaded func(*File), rejected func(error)) (*daemonSync, error) {
	d := &daemonSync{
		origin:   origin,
		addr:     o.addr(),
		selector: o.Selector,
		log:      log,
		backoff:  newBackoff(o.RetryBackoff, o.RetryBackoffMax),
	}
	d.init("grpc://"+d.addr, "", reloaded, rejected) // the first set comes from first
	conn, err := grpc.NewClient(d.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// gRPC reconnects on its own schedule, and a call made while it
		// waits fails at once: keep that schedule as short as ours. Each
		// attempt (connect and HTTP/2 handshake) gets as long as in rpc
		// mode; left 0, it would get only the current wait, as little as
		// RetryBackoff, too short for a busy host or a distant daemon.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay: o.RetryBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: o.RetryBackoffMax,
			},
			MinConnectTimeout: dialTimeout,
		}),
		// No gRPC keepalive pings (the provider sends one every 30 s):
		// flagd before its fix for issue #1998 used grpc-go's default
		// policy, which answers pings more often than every 5 minutes by
		// closing the connection, and each of those would be reported as
		// a lost daemon. A daemon that vanishes without closing the
		// connection is noticed by TCP keepalive instead. grpc-go's own
		// dialer leaves its timing to the kernel (first probe after 2
		// hours on Linux), so dial with ours. Like rpc mode's
		// http.Transport, it does not go through an HTTP proxy from the
		// environment.
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{KeepAlive: tcpKeepAlive}).DialContext(ctx, "tcp", addr)
		}),
	)
	if err != nil {
		return nil, err
	}
	d.conn, d.client = conn, syncv1grpc.NewFlagSyncServiceClient(conn)
	return d, nil
}

// first opens the stream and returns its first flag set, retrying until
// start has passed. A daemon that answers with an invalid set is an error
// at once: retrying would not fix it.
func (d *daemonSync) first(ctx context.Context, start time.Duration) (string, *File, error) {
	ctx, cancel := context.WithTimeout(ctx, start)
	defer cancel()
	data, err := d.connect(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("not reachable within %v: %w", start, err)
	}
	file, err := parse([]byte(data))
	if err != nil {
		d.cancelStream()
		return "", nil, fmt.Errorf("flag set: %w", err)
	}
	d.seen = data
	return data, file, nil
}

// connect opens streams until one brings a flag set, waiting
// RetryBackoff..RetryBackoffMax between attempts, and returns that set. It
// fails only when ctx is done, with the cause of the last failure.
func (d *daemonSync) connect(ctx context.Context) (data string, err error) {
	err = retry(ctx, &d.backoff, func(ctx context.Context) (err error) {
		data, err = d.open(ctx)
		return err
	})
	return data, err
}

// open starts a SyncFlags stream and waits for its first flag set. The
// stream lives until stop; ctx bounds only the wait.
func (d *daemonSync) open(ctx context.Context) (string, error) {
	life, cancel := context.WithCancel(d.quit)
	abort := context.AfterFunc(ctx, cancel)
	defer abort()
	req := &syncv1.SyncFlagsRequest{}
	if d.selector != "" {
		// flagd reads the header; daemons before it read the field, which
		// the provider still sends too.
		life = metadata.AppendToOutgoingContext(life, "flagd-selector", d.selector)
		req.Selector = d.selector //lint:ignore SA1019 for daemons that predate the header
	}
	if _, start := ctx.Deadline(); start && d.conn.GetState() == connectivity.TransientFailure {
		// gRPC dials again on its own schedule, and a call meanwhile
		// fails at once with the last dial's error: a daemon up since
		// would not be tried before gRPC's next dial (after the start
		// window's last attempt, say). Dial now, and give the dial a
		// moment to end; the channel stays in TransientFailure until
		// it is ready (gRFC A62), so the wait ends on ready or time.
		// Only in the start window (a ctx with a deadline): in a long
		// outage it would restart gRPC's backoff at every attempt, a
		// dial every RetryBackoff from every Pod.
		d.conn.ResetConnectBackoff()
		settle, cancel := context.WithTimeout(ctx, dialSettle)
		d.conn.WaitForStateChange(settle, connectivity.TransientFailure)
		cancel()
	}
	// Without WaitForReady a call fails at once while gRPC cannot
	// connect, which gives us the cause to report.
	stream, err := d.client.SyncFlags(life, req)
	var msg *syncv1.SyncFlagsResponse
	if err == nil {
		msg, err = stream.Recv()
	}
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return "", errors.Join(ctx.Err(), err)
		}
		return "", err
	}
	d.stream, d.cancelStream = stream, cancel
	return msg.GetFlagConfiguration(), nil
}

// Init has nothing to do: Open connected already.
func (d *daemonSync) Init(context.Context) error { return nil }

// Sync hands over the first flag set, then every new one the stream
// brings, and reconnects when the stream breaks. flagd starts it after
// Init and cancels ctx on shutdown; Source.Close stops it earlier.
func (d *daemonSync) Sync(ctx context.Context, out chan<- isync.DataSync) error {
	defer close(d.done)
	defer d.conn.Close()
	defer func() { d.cancelStream() }() // the current stream, not the first
	defer context.AfterFunc(ctx, d.cancel)()
	ctx = d.quit

	if !d.start(ctx, out) {
		return nil
	}
	for {
		msg, err := d.stream.Recv()
		if err == nil {
			d.receive(ctx, out, msg.GetFlagConfiguration())
			continue
		}
		d.cancelStream()
		if ctx.Err() != nil {
			return nil
		}
		// Once per outage: connect retries quietly.
		d.rejected(fmt.Errorf("%s: connection lost: %w", d.origin, err))
		d.lost = true
		data, err := d.connect(ctx)
		if err != nil {
			return nil // stopped
		}
		d.receive(ctx, out, data)
	}
}

// receive validates a flag set from the stream and hands it over. The
// first set after a reconnection counts even when it is unchanged: the
// handles are refreshed and OnChange tells the caller the daemon is back.
func (d *daemonSync) receive(ctx context.Context, out chan<- isync.DataSync, data string) {
	back := d.lost
	d.lost = false
	if back {
		d.log.Info("reconnected to flagd", "source", d.origin)
	}
	if data == d.seen && !back {
		return // the daemon resent the set we have
	}
	d.seen = data
	file, err := parse([]byte(data))
	if err != nil {
		d.rejected(fmt.Errorf("%s: flag set: %w", d.origin, err))
		return
	}
	if data == *d.live.Load() {
		d.reloaded(file) // nothing new for the provider
		return
	}
	d.apply(ctx, out, data, file)
}
