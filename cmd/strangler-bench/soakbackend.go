//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// The soak's backends are the bench backend plus what the soak needs: fault
// modes for the service, and a record of what happened to each write, so
// that a failed POST can be matched afterwards with what the service did
// with it.

const (
	// unavailablePath, with ?for=5s, makes the backend answer 503 to every
	// other request for that long: an overloaded or redeploying service.
	unavailablePath = "/_bench/unavailable"
	// soakIDHeader carries each POST's unique id, so that the backends'
	// event logs can say what became of the POSTs the client saw fail.
	soakIDHeader = "X-Soak-Id"
	// shadowHeader marks Strangler's shadow copies.
	shadowHeader = "X-Strangler-Shadow"
)

// Events in a backend's event log, one line "EVENT ID" each. A POST is
// logged when its headers arrive and again once its answer has been
// flushed to the socket, so that a POST received but never answered (the
// process was killed meanwhile) is visible in the log: written with
// O_APPEND, every line is in the kernel the moment the write returns, and
// a SIGKILL loses none.
const (
	eventReceived    = "recv"  // a POST's headers arrived
	eventOK          = "ok"    // a POST was answered 200
	eventUnavailable = "503"   // answered 503 in a failure window (id "-" for requests other than POSTs)
	eventReset       = "reset" // a shadow copy's connection was reset (id "-")
	noID             = "-"
)

// soakBackend is a backend with the soak's fault modes.
type soakBackend struct {
	next             *backend
	events           *os.File // nil: nothing recorded
	resetShare       float64  // of shadow copies, 0..1
	latency          time.Duration
	unavailableUntil atomic.Int64
}

// newSoakBackend returns a backend that appends to the event log events
// (none when ""), resets resetShare of the shadow copies it gets, and takes
// latency to answer each request.
func newSoakBackend(events string, resetShare float64, latency time.Duration) (*soakBackend, error) {
	sb := &soakBackend{next: newBackend(), resetShare: resetShare, latency: latency}
	if events != "" {
		f, err := os.OpenFile(events, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		sb.events = f
	}
	return sb, nil
}

// close closes the event log.
func (sb *soakBackend) close() {
	if sb.events != nil {
		sb.events.Close()
	}
}

// record appends one event. One write per line: appends of a few bytes are
// not interleaved, whatever the concurrency.
func (sb *soakBackend) record(event, id string) {
	if sb.events == nil {
		return
	}
	if id == "" {
		id = noID
	}
	_, _ = sb.events.WriteString(event + " " + id + "\n")
}

// ServeHTTP answers like the bench backend, except that a share of the
// shadow copies get a connection reset, every request gets a 503 during an
// unavailable window, POSTs are recorded, and each answer takes the
// backend's latency. A POST's body is read whole before it is answered, as
// a real write would be.
func (sb *soakBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case unavailablePath:
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d < 0 || d > time.Minute {
			http.Error(w, "want ?for=DURATION up to 1m", http.StatusBadRequest)
			return
		}
		sb.unavailableUntil.Store(time.Now().Add(d).UnixNano())
		w.WriteHeader(http.StatusNoContent)
		return
	case countsPath:
		sb.next.ServeHTTP(w, r)
		return
	}
	shadow := r.Header.Get(shadowHeader) != ""
	if shadow && sb.resetShare > 0 && rand.Float64() < sb.resetShare {
		sb.record(eventReset, noID)
		resetConnection(w)
		return
	}
	id := ""
	if r.Method == http.MethodPost && !shadow {
		id = r.Header.Get(soakIDHeader)
		sb.record(eventReceived, id)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	if sb.latency > 0 {
		time.Sleep(sb.latency)
	}
	event := eventOK
	if time.Now().UnixNano() < sb.unavailableUntil.Load() {
		event = eventUnavailable
		http.Error(w, "unavailable (soak failure window)", http.StatusServiceUnavailable)
	} else {
		sb.next.ServeHTTP(w, r)
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		return // not answered: the log keeps it as received only
	}
	if id != "" || event == eventUnavailable {
		sb.record(event, id)
	}
}

// resetConnection closes the request's connection with SO_LINGER 0, so the
// kernel sends a RST instead of a FIN: the peer sees "connection reset by
// peer", as from a crashed process or a middlebox.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot reset: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// postFate is what a backend's event log says about one POST.
type postFate uint8

const (
	fateUnseen      postFate = iota // not in the log: never reached this backend
	fateReceived                    // received, never answered: the process died with it
	fateOK                          // answered 200
	fateUnavailable                 // answered 503
)

// eventLog is a backend's event log, read back.
type eventLog struct {
	posts       map[string]postFate
	unavailable uint64 // 503 answers, POSTs included
	resets      uint64 // shadow copies reset
}

// readEventLog reads the event log at path; a log never created is empty.
func readEventLog(path string) (eventLog, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return eventLog{posts: map[string]postFate{}}, nil
	} else if err != nil {
		return eventLog{}, err
	}
	defer f.Close()
	return parseEventLog(f)
}

// parseEventLog parses an event log. A POST's fate is its last event.
func parseEventLog(r io.Reader) (eventLog, error) {
	el := eventLog{posts: map[string]postFate{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		event, id, ok := strings.Cut(sc.Text(), " ")
		if !ok || id == "" {
			return el, fmt.Errorf("event log line %d: %q", n, sc.Text())
		}
		var fate postFate
		switch event {
		case eventReceived:
			fate = fateReceived
		case eventOK:
			fate = fateOK
		case eventUnavailable:
			el.unavailable++
			fate = fateUnavailable
		case eventReset:
			el.resets++
			continue
		default:
			return el, fmt.Errorf("event log line %d: unknown event %q", n, event)
		}
		if id != noID && fate > el.posts[id] {
			el.posts[id] = fate
		}
	}
	return el, sc.Err()
}
