package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// wsUpstream upgrades every request and then runs talk on the tunnel.
func wsUpstream(talk func(c net.Conn)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		talk(c)
	})
}

// openTunnel upgrades a connection through the proxy.
func openTunnel(t *testing.T, e *env) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", e.proxyAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}

// A WebSocket tunnel no data crosses for limits.idle_timeout is closed, as
// nginx (proxy_read_timeout), HAProxy (timeout tunnel) and Envoy (stream
// idle timeout) do: else any client could pin proxy and upstream
// connections for nothing. Data either way keeps it open.
func TestIdleTunnelIsClosed(t *testing.T) {
	t.Parallel()
	const idle = 400 * time.Millisecond
	cfg := basicConfig + "limits: {idle_timeout: 400ms}\n"
	for _, tc := range []struct {
		name   string
		talk   func(c net.Conn) // the upstream's side
		client func(c net.Conn, br *bufio.Reader) error
		closed bool
	}{{
		name: "silent",
		talk: func(c net.Conn) { io.Copy(io.Discard, c) },
		client: func(c net.Conn, br *bufio.Reader) error {
			c.SetReadDeadline(time.Now().Add(10 * idle))
			_, err := br.ReadByte()
			return err
		},
		closed: true,
	}, {
		name: "the client talks",
		talk: func(c net.Conn) { io.Copy(c, c) },
		client: func(c net.Conn, br *bufio.Reader) error {
			for range 12 { // 3 idle timeouts
				if _, err := c.Write([]byte{'x'}); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := br.ReadByte(); err != nil {
					return err
				}
				time.Sleep(idle / 4)
			}
			return nil
		},
	}, {
		name: "the upstream talks",
		talk: func(c net.Conn) {
			for range 12 {
				if _, err := c.Write([]byte{'y'}); err != nil {
					return
				}
				time.Sleep(idle / 4)
			}
			io.Copy(io.Discard, c)
		},
		client: func(c net.Conn, br *bufio.Reader) error {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for range 12 {
				if _, err := br.ReadByte(); err != nil {
					return err
				}
			}
			return nil
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, cfg, flagJSON("orders-percent", 0), wsUpstream(tc.talk), nil)
			c, br := openTunnel(t, e)
			err := tc.client(c, br)
			switch {
			case tc.closed && err != io.EOF:
				t.Errorf("an idle tunnel: %v after %v, want it closed (EOF)", err, 10*idle)
			case !tc.closed && err != nil:
				t.Errorf("a tunnel with data every %v: %v, want it open", idle/4, err)
			}
		})
	}
}
