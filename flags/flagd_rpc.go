package flags

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"buf.build/gen/go/open-feature/flagd/connectrpc/go/flagd/evaluation/v2/evaluationv2connect"
	evalv2 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/evaluation/v2"
	"connectrpc.com/connect"
	"github.com/go-logr/logr"
	flagd "github.com/open-feature/go-sdk-contrib/providers/flagd/pkg"
	"github.com/open-feature/go-sdk/openfeature"
)

// openRPC starts the flagd provider in rpc mode: every evaluation is a
// call to the daemon's evaluation service, flagd.evaluation.v2.Service,
// which provider v0.6.0 speaks over Connect on HTTP/1.1 (flagd serves
// Connect, gRPC and gRPC-Web on the same port). An rpcWatch of our own
// follows the daemon's event stream and keeps the handles current.
func openRPC(ctx context.Context, opts Options, o FlagdOptions, start time.Duration) (*Source, error) {
	s := newSource(opts, fmt.Sprintf("flagd at %s (%s)", o.addr(), ModeRPC))
	s.remote = true
	w := newRPCWatch(s, o)
	// Started before the daemon is up, the provider makes its attempts at
	// once (its first waits are 0) and fails with only "grpc connection
	// establishment failed". Our stream waits for a daemon that is still
	// starting, and says why it could not connect.
	if err := w.first(ctx, start); err != nil {
		w.transport.CloseIdleConnections()
		return nil, fmt.Errorf("flags: %s: %w", s.origin, err)
	}

	provider, err := flagd.NewProvider(
		flagd.WithRPCResolver(),
		flagd.WithHost(o.Host),
		flagd.WithPort(o.Port),
		flagd.WithSelector(o.Selector),
		// Our handles are the cache, refreshed from our own stream. The
		// provider's could serve them a stale value: an evaluation in
		// flight when a change arrives stores its old answer after the
		// change removed the entry.
		flagd.WithoutCache(),
		// Per evaluation, and for the provider's start, which now only
		// needs its own event stream's first message.
		flagd.WithDeadline(max(1, int(o.Timeout.Milliseconds()))), // 0 would be none
		// Its stream only matters for its start: after a loss it retries
		// 5 times (its default, pinned against the environment) over
		// about 31 s, then gives up and stays in the ERROR state, in which
		// evaluations still go to the daemon.
		flagd.WithEventStreamConnectionMaxAttempts(5),
		flagd.WithLogger(logr.FromSlogHandler(s.log.Handler())),
		pinRPC,
	)
	if err == nil {
		err = s.api.SetProviderAndWait(ctx, provider)
		if err != nil {
			_ = s.api.Shutdown(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		w.closeStream()
		w.transport.CloseIdleConnections()
		return nil, fmt.Errorf("flags: %s: the flagd provider did not start: %w", s.origin, err)
	}
	s.updates = w
	go w.run()
	return s, nil
}

// dialTimeout bounds one attempt to connect the event stream.
const dialTimeout = 5 * time.Second

// pinRPC makes the options above the whole configuration: flagd reads
// FLAGD_* environment variables first, and FLAGD_SOCKET_PATH, FLAGD_TLS or
// FLAGD_TARGET_URI would silently point it elsewhere.
func pinRPC(c *flagd.ProviderConfiguration) {
	c.SocketPath, c.TargetUri, c.OfflineFlagSourcePath = "", "", ""
	c.Tls, c.CertPath = false, ""
	c.ProviderId = ""
	c.OtelIntercept = false
}

// rpcWatch keeps the handles of an rpc-mode Source current by following
// the daemon's event stream (flagd.evaluation.v2.Service/EventStream): the
// daemon sends provider_ready on every new stream, then
// configuration_change after each change of its flags.
//
// It is a client of that stream of its own rather than a listener to the
// provider's events, because provider v0.6.0's stream does not serve a
// fleet: with its cache off it drops configuration_change, it gives up
// for good after 5 failed attempts (about 31 s), its waits double without
// a cap, and a stream the daemon ends cleanly raises no event. The
// provider's stream is only used for its start.
//
// The handles are refreshed by a second goroutine, refreshLoop, so that a
// refresh the daemon does not fully answer can be retried while the
// stream is still followed.
type rpcWatch struct {
	s         *Source
	selector  string
	transport *http.Transport
	client    evaluationv2connect.ServiceClient
	backoff   backoff // between attempts to open the stream

	// changes tells refreshLoop that the daemon's flags may have changed.
	// Its buffer of one folds changes that come while a refresh runs into
	// the next one, which re-evaluates every handle anyway.
	changes chan struct{}
	retries backoff       // between attempts to refresh every handle
	idle    chan struct{} // closed when refreshLoop has returned

	quit   context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// Owned by Open, then by run.
	stream      *connect.ServerStreamForClient[evalv2.EventStreamResponse]
	closeStream func()
}

func newRPCWatch(s *Source, o FlagdOptions) *rpcWatch {
	// Its own transport: the stream holds a connection for good, and
	// CloseIdleConnections at the end leaves no goroutine behind. A
	// connection to a daemon that vanished without closing it is noticed
	// by TCP keepalive, and a blackholed address must not hold up
	// reconnection for the system's connect timeout (minutes).
	transport := &http.Transport{
		DialContext: (&net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}).DialContext,
	}
	w := &rpcWatch{
		s:         s,
		selector:  o.Selector,
		transport: transport,
		client:    evaluationv2connect.NewServiceClient(&http.Client{Transport: transport}, "http://"+o.addr()),
		backoff:   newBackoff(o.RetryBackoff, o.RetryBackoffMax),
		changes:   make(chan struct{}, 1),
		retries:   newBackoff(o.RetryBackoff, o.RetryBackoffMax),
		idle:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	w.quit, w.cancel = context.WithCancel(context.Background())
	w.closeStream = func() {}
	return w
}

func (w *rpcWatch) stop()                    { w.cancel() }
func (w *rpcWatch) stopped() <-chan struct{} { return w.done }

// first opens the stream, retrying until start has passed.
func (w *rpcWatch) first(ctx context.Context, start time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, start)
	defer cancel()
	if err := retry(ctx, &w.backoff, w.open); err != nil {
		return fmt.Errorf("not reachable within %v: %w", start, err)
	}
	return nil
}

// open starts an event stream and waits for its first message. The stream
// lives until stop; ctx bounds only the wait.
func (w *rpcWatch) open(ctx context.Context) error {
	life, cancel := context.WithCancel(w.quit)
	abort := context.AfterFunc(ctx, cancel)
	defer abort()
	req := connect.NewRequest(&evalv2.EventStreamRequest{})
	if w.selector != "" {
		req.Header().Set("flagd-selector", w.selector)
	}
	stream, err := w.client.EventStream(life, req)
	if err == nil && !stream.Receive() {
		err = stream.Err()
		if err == nil {
			err = errors.New("the daemon ended the event stream")
		}
	}
	if err != nil {
		cancel()
		if stream != nil {
			_ = stream.Close()
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		return err
	}
	w.stream = stream
	w.closeStream = func() {
		cancel()
		_ = stream.Close()
	}
	return nil
}

// run is the watch goroutine: it refreshes the handles on every change,
// and when the stream breaks it reports that once, keeps the last answers
// and reconnects. Changes made while no stream was open raise no event,
// so a new stream refreshes every handle, and OnChange tells the caller
// that the daemon is back.
func (w *rpcWatch) run() {
	defer close(w.done)
	go w.refreshLoop()
	defer func() { <-w.idle }() // it stops on quit, as run does
	defer w.transport.CloseIdleConnections()
	defer func() { w.closeStream() }() // the current stream, not the first
	for {
		err := w.follow()
		w.closeStream()
		if w.quit.Err() != nil {
			return
		}
		w.s.rejected(fmt.Errorf("%s: connection lost: %w", w.s.origin, err))
		if retry(w.quit, &w.backoff, w.open) != nil {
			return // stopped
		}
		w.s.log.Info("reconnected to flagd", "source", w.s.origin)
		w.changed()
	}
}

// follow handles the stream's messages until it ends.
func (w *rpcWatch) follow() error {
	for w.stream.Receive() {
		switch w.stream.Msg().GetType() {
		case "configuration_change", "provider_ready":
			w.changed()
		case "provider_shutdown":
			return errors.New("the daemon is shutting down")
		}
		// keep_alive and anything newer: nothing to do
	}
	if err := w.stream.Err(); err != nil {
		return err
	}
	return errors.New("the daemon ended the event stream")
}

// changed asks refreshLoop to refresh every handle; it never blocks.
func (w *rpcWatch) changed() {
	select {
	case w.changes <- struct{}{}:
	default: // a refresh is pending already
	}
}

// refreshLoop refreshes every handle after each change, and tells the
// caller (OnChange). An evaluation that does not reach the daemon keeps
// its handle's last answer, and nothing else would ask again before the
// daemon's next change: a ramp or a rollback would be lost on this proxy.
// So the refresh is repeated, waiting RetryBackoff..RetryBackoffMax, until
// the daemon has answered for every handle, and the miss is reported once
// per change through OnReloadError. A new change during the waits is
// refreshed at once.
func (w *rpcWatch) refreshLoop() {
	defer close(w.idle)
	for {
		select {
		case <-w.changes:
		case <-w.quit.Done():
			return
		}
		w.retries.reset()
		reported := false
		for {
			// No OnChange until every handle is current: after
			// OnReloadError, the next OnChange says the flags are current
			// again (the caller's staleness gauge reads it so).
			missed := w.s.update(nil, false)
			if missed == nil {
				break
			}
			if !reported {
				w.s.rejected(fmt.Errorf("%s: re-evaluating the flags after a change: "+
					"the daemon did not answer for every flag; retrying: %w", w.s.origin, missed))
				reported = true
			}
			t := time.NewTimer(w.retries.wait())
			select {
			case <-t.C:
			case <-w.changes:
			case <-w.quit.Done():
				t.Stop()
				return
			}
			t.Stop()
		}
		if reported {
			w.s.log.Info("flags re-evaluated after retrying", "source", w.s.origin)
		}
		w.s.announce() // once per change, whatever the retries changed
	}
}

// answered reports whether a failed rpc-mode evaluation is the daemon's
// own answer about the flag rather than a failure to get one: the flag
// is missing, its value is not a number, or its targeting rule failed for
// this context (PARSE_ERROR when JsonLogic cannot run it, GENERAL when it
// names no variant). flagd sends GENERAL with Connect code "unknown",
// which the provider passes on only as the start of its message; an
// unreachable daemon is PROVIDER_NOT_READY (code "unavailable"), and a
// timeout is GENERAL with code "deadline_exceeded".
//
// A gateway between us and the daemon that answers with a bare HTTP error
// also gets code "unknown". Taking that for an answer is the safe side:
// the flag is then evaluated per request, by the daemon, never served a
// stale value.
func answered(d openfeature.FloatEvaluationDetails) bool {
	switch d.ErrorCode {
	case openfeature.FlagNotFoundCode, openfeature.TypeMismatchCode, openfeature.ParseErrorCode:
		return true
	case openfeature.GeneralCode:
		return strings.HasPrefix(d.ErrorMessage, connect.CodeUnknown.String()+": ")
	}
	return false
}
