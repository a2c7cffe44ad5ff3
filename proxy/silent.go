package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// A connection's quiet state, for shutdown (see silentConns).
const (
	connFresh int32 = iota // no byte read yet
	connSpoke              // a byte was read: net/http's to close
	connShut               // closed at shutdown before it spoke
)

// silentConns are a listener's connections that have not sent a byte yet
// (a browser's or a load balancer's preconnect). http.Server.Shutdown
// closes idle keep-alive connections at once but counts a new one as busy
// until it is 5 s old, so one preconnect held every SIGTERM for up to 5 s,
// and with a shorter shutdown_timeout made the log say requests in flight
// were cut where there were none. nginx closes such connections at once;
// shut does the same, before Shutdown waits.
//
// A connection is held from Accept to its first byte (or its close): two
// map operations a connection, none a request. sync.Map, not a locked
// map: connections come and go on every core.
type silentConns struct {
	m       sync.Map // *guardConn → struct{}
	closing atomic.Bool
}

func (s *silentConns) add(c *guardConn) {
	c.silentIn = s
	s.m.Store(c, struct{}{})
	if s.closing.Load() {
		// Accepted as shut ran: shut did not see it, or saw it too
		// (shutting twice is nothing).
		c.shutSilent()
	}
}

func (s *silentConns) forget(c *guardConn) { s.m.Delete(c) }

// shut closes, as a read deadline of now, every connection that has not
// sent a byte, and those accepted from now on: net/http's read of their
// first request fails, and it closes them without an answer.
func (s *silentConns) shut() {
	s.closing.Store(true)
	s.m.Range(func(k, _ any) bool {
		k.(*guardConn).shutSilent()
		return true
	})
}

// spoke records the connection's first byte. It reports false when shut
// came first: the byte is not read, and the connection is closed as
// though it had not come. A request whose first byte crosses a SIGTERM so
// is lost, as it is to nginx (and as it would be in the listen queue).
func (c *guardConn) spoke() bool {
	if c.quiet.CompareAndSwap(connFresh, connSpoke) {
		c.silentIn.forget(c)
		return true
	}
	return c.quiet.Load() == connSpoke
}

// shutSilent closes a connection that has not spoken (see silentConns).
// Bytes already in its socket are a request net/http has not read yet (a
// busy CPU, a backlog accepted as the proxy stops): that connection has
// spoken, and is served. (Where the socket cannot be peeked, not Linux or
// BSD, it is closed.)
func (c *guardConn) shutSilent() {
	if socketHasBytes(c.Conn) {
		c.spoke()
		return
	}
	if c.quiet.CompareAndSwap(connFresh, connShut) {
		c.Conn.SetReadDeadline(time.Now())
	}
}
