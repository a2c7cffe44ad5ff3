package flags

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"buf.build/gen/go/open-feature/flagd/connectrpc/go/flagd/evaluation/v2/evaluationv2connect"
	"buf.build/gen/go/open-feature/flagd/grpc/go/flagd/sync/v1/syncv1grpc"
	evalv2 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/evaluation/v2"
	syncv1 "buf.build/gen/go/open-feature/flagd/protocolbuffers/go/flagd/sync/v1"
	"connectrpc.com/connect"
	"github.com/open-feature/flagd/core/pkg/evaluator"
	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/model"
	"github.com/open-feature/flagd/core/pkg/store"
	isync "github.com/open-feature/flagd/core/pkg/sync"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
)

// The flagd daemon cannot be installed here, so these fakes stand in for
// it at the protocol level: each serves one of flagd's published services
// from the generated packages the provider itself is built on, on a real
// loopback listener. They can be stopped (the daemon goes away: listener
// and connections closed) and started again on the same port.

// flagSet is what a fake daemon serves: the current flag JSON and a channel
// closed when it is replaced.
type flagSet struct {
	mu        sync.Mutex
	flags     string
	changed   chan struct{}
	selectors []string // the selector of every stream opened, in order
}

func newFlagSet(flags string) *flagSet {
	return &flagSet{flags: flags, changed: make(chan struct{})}
}

func (f *flagSet) current() (string, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flags, f.changed
}

func (f *flagSet) set(flags string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flags = flags
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *flagSet) opened(selector string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.selectors = append(f.selectors, selector)
}

func (f *flagSet) seenSelectors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.selectors)
}

// listenAgain listens on addr, or on a free loopback port when addr is "".
// Restarting on the port just closed can race with the kernel, so it
// retries briefly.
func listenAgain(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t testing.TB) uint16 {
	t.Helper()
	ln := listenAgain(t, "")
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return uint16(port)
}

// syncDaemon is flagd's sync service, flagd.sync.v1.FlagSyncService, as an
// in-process provider sees it: SyncFlags streams the whole flag set at once
// and again after every push. Unlike flagd it does not validate the JSON,
// so a test can push a bad set.
type syncDaemon struct {
	syncv1grpc.UnimplementedFlagSyncServiceServer
	*flagSet
	t    testing.TB
	addr string
	port uint16

	mu  sync.Mutex
	srv *grpc.Server // nil while stopped
}

// startSyncDaemon serves flags on a free loopback port until the test ends.
func startSyncDaemon(t testing.TB, flags string) *syncDaemon {
	t.Helper()
	d := &syncDaemon{flagSet: newFlagSet(flags), t: t}
	d.serve(listenAgain(t, ""))
	t.Cleanup(d.stop)
	return d
}

func (d *syncDaemon) serve(ln net.Listener) {
	srv := grpc.NewServer()
	syncv1grpc.RegisterFlagSyncServiceServer(srv, d)
	d.mu.Lock()
	d.srv = srv
	d.addr = ln.Addr().String()
	d.port = uint16(ln.Addr().(*net.TCPAddr).Port)
	d.mu.Unlock()
	go func() { _ = srv.Serve(ln) }() // returns at Stop
}

// push replaces the flag set; every open stream sends it.
func (d *syncDaemon) push(flags string) { d.set(flags) }

// stop closes the listener and every connection, as a daemon that exits.
func (d *syncDaemon) stop() {
	d.mu.Lock()
	srv := d.srv
	d.srv = nil
	d.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// restart serves again on the same port.
func (d *syncDaemon) restart() {
	d.t.Helper()
	d.serve(listenAgain(d.t, d.addr))
}

func (d *syncDaemon) SyncFlags(req *syncv1.SyncFlagsRequest, stream grpc.ServerStreamingServer[syncv1.SyncFlagsResponse]) error {
	// Both places a client may put the selector: "field|header".
	selector := req.GetSelector() //lint:ignore SA1019 older clients send it here
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok && len(md.Get("flagd-selector")) > 0 {
		selector += "|" + md.Get("flagd-selector")[0]
	}
	d.opened(selector)
	for {
		flags, changed := d.current()
		if err := stream.Send(&syncv1.SyncFlagsResponse{FlagConfiguration: flags}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (d *syncDaemon) FetchAllFlags(context.Context, *syncv1.FetchAllFlagsRequest) (*syncv1.FetchAllFlagsResponse, error) {
	flags, _ := d.current()
	return &syncv1.FetchAllFlagsResponse{FlagConfiguration: flags}, nil
}

// evalDaemon is flagd's evaluation service as the provider's rpc mode
// speaks it: flagd.evaluation.v2.Service over the Connect protocol on
// HTTP/1.1 (flagd serves Connect, gRPC and gRPC-Web on one port). It
// evaluates with flagd's own evaluator from flagd/core, so targeting works
// as in the daemon. EventStream sends provider_ready, then a
// configuration_change naming every flag after each push.
type evalDaemon struct {
	evaluationv2connect.UnimplementedServiceHandler
	*flagSet
	t    testing.TB
	addr string
	port uint16
	eval *evaluator.JSON

	mu  sync.Mutex
	srv *http.Server // nil while stopped
}

const fakeSource = "fake-daemon"

func startEvalDaemon(t testing.TB, flags string) *evalDaemon {
	t.Helper()
	log := logger.NewLogger(nil, false)
	st, err := store.NewStore(log, []string{fakeSource})
	if err != nil {
		t.Fatal(err)
	}
	d := &evalDaemon{flagSet: newFlagSet(flags), t: t, eval: evaluator.NewJSON(log, st)}
	d.push(flags)
	d.serve(listenAgain(t, ""))
	t.Cleanup(d.stop)
	return d
}

func (d *evalDaemon) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.Handle(evaluationv2connect.NewServiceHandler(d))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	d.mu.Lock()
	d.srv = srv
	d.addr = ln.Addr().String()
	d.port = uint16(ln.Addr().(*net.TCPAddr).Port)
	d.mu.Unlock()
	go func() { _ = srv.Serve(ln) }() // returns at Close
}

func (d *evalDaemon) push(flags string) {
	if err := d.eval.SetState(isync.DataSync{FlagData: flags, Source: fakeSource}); err != nil {
		d.t.Fatalf("fake daemon: flagd refuses the flags: %v", err)
	}
	d.set(flags)
}

func (d *evalDaemon) stop() {
	d.mu.Lock()
	srv := d.srv
	d.srv = nil
	d.mu.Unlock()
	if srv != nil {
		_ = srv.Close() // listener and every connection, streams included
	}
}

func (d *evalDaemon) restart() {
	d.t.Helper()
	d.serve(listenAgain(d.t, d.addr))
}

func (d *evalDaemon) ResolveFloat(ctx context.Context, req *connect.Request[evalv2.ResolveFloatRequest]) (*connect.Response[evalv2.ResolveFloatResponse], error) {
	v, variant, reason, _, err := d.eval.ResolveFloatValue(ctx, "", req.Msg.GetFlagKey(), req.Msg.GetContext().AsMap())
	if err != nil {
		// The codes the provider maps back: NotFound, InvalidArgument
		// (type mismatch), DataLoss (parse error).
		code := connect.CodeUnknown
		switch err.Error() {
		case model.FlagNotFoundErrorCode:
			code = connect.CodeNotFound
		case model.TypeMismatchErrorCode:
			code = connect.CodeInvalidArgument
		case model.ParseErrorCode:
			code = connect.CodeDataLoss
		}
		return nil, connect.NewError(code, errors.New(err.Error()))
	}
	res := &evalv2.ResolveFloatResponse{Reason: reason}
	if reason != model.DisabledReason {
		res.Value, res.Variant = &v, &variant
	}
	return connect.NewResponse(res), nil
}

func (d *evalDaemon) EventStream(ctx context.Context, req *connect.Request[evalv2.EventStreamRequest], stream *connect.ServerStream[evalv2.EventStreamResponse]) error {
	d.opened(req.Header().Get("flagd-selector"))
	// Subscribe before provider_ready: once the client has
	// it, a push must reach this stream. Taken after the send, a push made
	// while this goroutine waited to run again closed a channel it never
	// saw, and the change was lost.
	_, changed := d.current()
	if err := stream.Send(&evalv2.EventStreamResponse{Type: "provider_ready"}); err != nil {
		return err
	}
	for {
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
		var flags string
		flags, changed = d.current()
		names, err := flagNames(flags)
		if err != nil {
			return err
		}
		data, err := structpb.NewStruct(map[string]any{"flags": names})
		if err != nil {
			return err
		}
		if err := stream.Send(&evalv2.EventStreamResponse{Type: "configuration_change", Data: data}); err != nil {
			return err
		}
	}
}

// flagNames maps each flag in the set to flagd's change notice.
func flagNames(flags string) (map[string]any, error) {
	f, err := parse([]byte(flags))
	if err != nil {
		return nil, err
	}
	names := map[string]any{}
	for _, n := range f.Names() {
		names[n] = map[string]any{"type": "update", "source": fakeSource}
	}
	return names, nil
}

// flakyEval is an evaluation daemon whose ResolveFloat can be made to
// fail as a daemon that is briefly overloaded or unreachable does, while
// its event stream stays up.
type flakyEval struct {
	*evalDaemon
	failure atomic.Pointer[connect.Code] // nil: answer
	srv     *http.Server
	port    uint16
	// hold, when set, keeps every ResolveFloat waiting until it is
	// closed (or the client gives up); held counts those waiting.
	hold atomic.Pointer[chan struct{}]
	held atomic.Int32
}

// holdAnswers keeps every evaluation waiting until the returned function
// is called.
func (d *flakyEval) holdAnswers() (release func()) {
	c := make(chan struct{})
	d.hold.Store(&c)
	var once sync.Once
	return func() { once.Do(func() { d.hold.Store(nil); close(c) }) }
}

// startFlakyEval serves flags like startEvalDaemon, on a port of its own.
func startFlakyEval(t testing.TB, flags string) *flakyEval {
	t.Helper()
	d := &flakyEval{evalDaemon: startEvalDaemon(t, flags)}
	ln := listenAgain(t, "")
	mux := http.NewServeMux()
	mux.Handle(evaluationv2connect.NewServiceHandler(d))
	d.srv = &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	d.port = uint16(ln.Addr().(*net.TCPAddr).Port)
	go func() { _ = d.srv.Serve(ln) }() // returns at Close
	t.Cleanup(func() { _ = d.srv.Close() })
	return d
}

// fail makes every ResolveFloat fail with code; nil makes them answer.
// CodeDeadlineExceeded is a daemon too slow to answer in time.
func (d *flakyEval) fail(code *connect.Code) { d.failure.Store(code) }

func (d *flakyEval) ResolveFloat(ctx context.Context, req *connect.Request[evalv2.ResolveFloatRequest]) (*connect.Response[evalv2.ResolveFloatResponse], error) {
	if c := d.hold.Load(); c != nil {
		d.held.Add(1)
		select {
		case <-*c:
		case <-ctx.Done():
		}
		d.held.Add(-1)
	}
	code := d.failure.Load()
	switch {
	case code == nil:
		return d.evalDaemon.ResolveFloat(ctx, req)
	case *code == connect.CodeDeadlineExceeded:
		<-ctx.Done() // the client gives up first
		return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
	}
	return nil, connect.NewError(*code, errors.New("overloaded"))
}
