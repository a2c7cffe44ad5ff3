package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNoAnswerReachesAnotherRequest mixes, on the same pooled upstream
// connections, answers of every framing and a few misbehaviours that end
// or spoil a connection (a close without "Connection: close", a stray CRLF
// after the body, both framings, an HTTP/1.0 keep-alive, a body to EOF, a
// body cut short) and requires every client to read its own answer, or a
// failure, never another request's.
func TestNoAnswerReachesAnotherRequest(t *testing.T) {
	t.Parallel()
	modes := []string{"cl", "chunked", "trailer", "close", "crlf", "both", "http10", "eof", "short", "204", "head"}
	up := startEchoUpstream(t, func(req *http.Request, c net.Conn) bool {
		parts := strings.Split(req.URL.Path, "/") // /id/mode
		id, mode := parts[1], parts[2]
		var err error
		switch mode {
		case "cl":
			_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
		case "chunked":
			_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x;e=1\r\n%s\r\n0\r\n\r\n", len(id), id)
		case "trailer":
			_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTrailer: X-Id\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Id: %s\r\n\r\n", len(id), id, id)
		case "close":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
			return false
		case "crlf":
			_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s\r\n", len(id), id)
		case "both":
			_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON", len(id), id)
		case "http10":
			_, err = fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s", len(id), id)
		case "eof":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\n\r\n%s", id)
			return false
		case "short":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(id)+5, id)
			return false
		case "204":
			_, err = fmt.Fprintf(c, "HTTP/1.1 204 No Content\r\nX-Id: %s\r\n\r\n", id)
		case "head":
			_, err = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nX-Id: %s\r\nContent-Length: %d\r\n\r\n", id, len(id))
		}
		return err == nil
	})
	p := proxyInFrontOf(t, up.addr, "")
	var wg sync.WaitGroup
	errs := make(chan string, 1000)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				id := fmt.Sprintf("w%di%d", w, i)
				mode := modes[(w*7+i)%len(modes)]
				method := "GET"
				if mode == "head" {
					method = "HEAD"
				}
				st, hdr, body, err := reviewRequest(p, method, "/"+id+"/"+mode)
				switch {
				case mode == "short":
					if err == nil {
						errs <- fmt.Sprintf("%s %s: a cut answer read as complete: %d %q", id, mode, st, body)
					}
				case err != nil:
					errs <- fmt.Sprintf("%s %s: %v", id, mode, err)
				case mode == "204" || mode == "head":
					if st != map[string]int{"204": 204, "head": 200}[mode] || hdr.Get("X-Id") != id {
						errs <- fmt.Sprintf("%s %s: got %d X-Id %q", id, mode, st, hdr.Get("X-Id"))
					}
				case st != 200 || body != id:
					errs <- fmt.Sprintf("%s %s: got %d %q, want 200 %q", id, mode, st, body, id)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func reviewRequest(proxyAddr, method, path string) (int, http.Header, string, error) {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return 0, nil, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, path)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return 0, nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), err
}
