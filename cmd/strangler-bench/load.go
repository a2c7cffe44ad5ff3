//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxRate caps every load loop's request count (rate × duration) well
// above anything two cores can do, so that no loop is bounded by time alone.
const maxRate = 1_000_000

// users is the size of the pool X-User-Id values are drawn from: enough
// that the 10 % split is close to 10 %, few enough that every user recurs.
const users = 1000

// loadTarget is what one cell's load sends: requests to one base URL,
// answered by bodies of one size.
type loadTarget struct {
	tr      *http.Transport
	url     string
	sticky  bool // draw an X-User-Id per request
	bodyLen int64
}

// newLoadTarget returns a target with a fresh connection pool of at most
// conns keep-alive connections, so that no connection outlives its cell.
func newLoadTarget(url string, sticky bool, bodyLen, conns int) *loadTarget {
	return &loadTarget{
		tr: &http.Transport{
			Proxy:                 nil, // loopback only, whatever the environment says
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:          conns,
			MaxIdleConnsPerHost:   conns,
			MaxConnsPerHost:       conns,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			DisableCompression:    true,
		},
		url:     url,
		sticky:  sticky,
		bodyLen: int64(bodyLen),
	}
}

// close drops the target's connections.
func (t *loadTarget) close() { t.tr.CloseIdleConnections() }

// userIDs are the X-User-Id values, built once.
var userIDs = func() [][]string {
	ids := make([][]string, users)
	for i := range ids {
		ids[i] = []string{"user-" + strconv.Itoa(i)}
	}
	return ids
}()

// loadResult is what one load phase measured.
type loadResult struct {
	requests uint64 // answered 200 with the whole body
	errors   uint64 // failed, another status, short body, or (open loop) never sent in time
	firstErr string
	elapsed  time.Duration
	hist     histogram // latencies of the answered requests
	// lag (open loop): how late each request was sent after its due
	// time, the load generator's own delay, in every latency above.
	lag histogram
}

// rps is the phase's throughput.
func (r *loadResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// add merges one worker's result into r.
func (r *loadResult) add(o *loadResult) {
	r.requests += o.requests
	r.errors += o.errors
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
	r.hist.merge(&o.hist)
	r.lag.merge(&o.lag)
}

// fail counts an error, keeping the first message.
func (r *loadResult) fail(err error) {
	r.errors++
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
}

// errResent is a request net/http's Transport sent again on a new
// connection after the one it was sent on failed before any answer: a
// reset the peer caused, which the retry would hide.
var errResent = errors.New("connection failed before an answer (net/http resent the request on a new connection)")

// do sends one request and reads the whole answer.
func (t *loadTarget) do(ctx context.Context, rng *rand.Rand) error {
	attempts := 0
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { attempts++ }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	if t.sticky {
		req.Header["X-User-Id"] = userIDs[rng.IntN(users)]
	}
	resp, err := t.tr.RoundTrip(req)
	if err != nil {
		return err
	}
	if attempts > 1 {
		resp.Body.Close()
		return errResent
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %s", resp.Status)
	case n != t.bodyLen:
		return fmt.Errorf("body of %d bytes, want %d", n, t.bodyLen)
	}
	return nil
}

// closedLoop keeps conns requests in flight for d: each worker sends its
// next request as soon as the last is answered. Throughput at a fixed
// concurrency: the figure for requests/s and CPU per request.
func (t *loadTarget) closedLoop(ctx context.Context, conns int, d time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d+15*time.Second) // a hung request ends the phase
	defer cancel()
	perWorker := int(maxRate*d.Seconds())/conns + 1
	results := make([]loadResult, conns)
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			r := &results[w]
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for range perWorker {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				if err := t.do(ctx, rng); err != nil {
					r.fail(err)
					continue
				}
				r.requests++
				r.hist.record(time.Since(t0))
			}
		})
	}
	wg.Wait()
	var total loadResult
	total.elapsed = time.Since(start)
	for i := range results {
		total.add(&results[i])
	}
	return total
}

// openLoop sends rate requests per second for d with send, on a schedule
// fixed in advance, whatever the answers: request i is due at start +
// (i+1)/rate. A pacer hands each due request to the first of conns
// workers free to send it. Latency is measured from the due time, not
// from when the request could be sent, so that a stall shows up in the
// percentiles of every request it delayed (no coordinated omission).
// Requests still unsent when d + grace has passed count as errors. Each
// worker calls send with its own random source, never concurrently with
// itself.
//
// The pacer wakes on a timer the kernel fires on time (see ticker):
// woken by Go's own timers, which fire up to a millisecond late when the
// process is idle (its network poller sleeps in whole milliseconds),
// requests due within that millisecond went out together, in bursts a
// proxy serves more cheaply than the steady rate it was meant to see.
func openLoop(ctx context.Context, conns int, rate float64, d, grace time.Duration, send func(context.Context, *rand.Rand) error) loadResult {
	rate = min(rate, maxRate)
	total := int(rate * d.Seconds())
	ctx, cancel := context.WithTimeout(ctx, d+grace)
	defer cancel()
	results := make([]loadResult, conns)
	var late atomic.Uint64
	due := make(chan time.Time, conns)
	interval := time.Duration(float64(time.Second) / rate)
	// The schedule starts with the ticker, before the workers: starting
	// 64 goroutines takes up to milliseconds, which a start taken before
	// them would add to every request's lateness and latency.
	tick, tickErr := newTicker(interval)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			r := &results[w]
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for at := range due {
				if ctx.Err() != nil {
					late.Add(1)
					continue
				}
				r.lag.record(time.Since(at))
				if err := send(ctx, rng); err != nil {
					if ctx.Err() == nil {
						r.fail(err)
					} else {
						late.Add(1)
					}
					continue
				}
				r.requests++
				r.hist.record(time.Since(at))
			}
		})
	}
	sent, pacerErr := 0, tickErr
	if tickErr == nil {
		sent, pacerErr = pace(ctx, tick, start, interval, total, due)
		tick.close()
	}
	late.Add(uint64(total - sent))
	close(due)
	wg.Wait()
	var sum loadResult
	sum.elapsed = time.Since(start)
	for i := range results {
		sum.add(&results[i])
	}
	if n := late.Load(); n > 0 {
		sum.errors += n
		switch {
		case sum.firstErr != "":
		case pacerErr != nil:
			sum.firstErr = fmt.Sprintf("%d requests not sent: %v", n, pacerErr)
		default:
			sum.firstErr = fmt.Sprintf("%d requests not answered within %v of the end of the schedule", n, grace)
		}
	}
	return sum
}

// pace sends the due times of total requests, one every interval from
// start (when t was started), on due as t fires; a due time whose request
// no worker is free to take waits in the channel, and the next ones come
// at once after it. It returns how many it sent, fewer when ctx ends
// first.
func pace(ctx context.Context, t *ticker, start time.Time, interval time.Duration, total int, due chan<- time.Time) (int, error) {
	stop := context.AfterFunc(ctx, t.stop)
	defer stop()
	sent := 0
	for sent < total {
		n, err := t.wait()
		if err != nil {
			if ctx.Err() != nil {
				return sent, nil
			}
			return sent, err
		}
		for ; n > 0 && sent < total; n-- {
			at := start.Add(time.Duration(sent+1) * interval)
			select {
			case due <- at:
				sent++
			case <-ctx.Done():
				return sent, nil
			}
		}
	}
	return sent, nil
}

// holdIdle opens n keep-alive connections to addr (host:port), sends one
// request on each (parallel at a time) and returns them open and idle. The
// caller closes them.
func holdIdle(ctx context.Context, addr, path string, n, parallel int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conns[i], errs[i] = oneRequest(ctx, addr, path)
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		closeAll(conns)
		return nil, fmt.Errorf("idle connections: %w", err)
	}
	return conns, nil
}

// oneRequest dials addr, sends one keep-alive GET for path and reads the
// whole answer, leaving the connection open.
func oneRequest(ctx context.Context, addr, path string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	if err == nil && resp.Close {
		err = errors.New("connection not kept alive")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// firstError returns the first non-nil error of errs.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// closeAll closes every non-nil connection.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
