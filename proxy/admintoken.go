package proxy

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/flags"
)

// readToken reads a token file: its content without surrounding white
// space, which must not be empty.
func readToken(path string) ([]byte, error) {
	b, err := flags.ReadFile(path, flags.MaxTokenFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%q does not exist", path)
		}
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%q is empty", path)
	}
	return b, nil
}

// requireToken guards h (/api/* on the admin listener) with a bearer
// token read from admin_token_file, when the current config names one.
// The file is read on every request, so a rotated token (a Kubernetes
// Secret) takes effect at once, without a restart. (A cache keyed on the
// file's size and modification time kept a revoked token valid when the
// new one had the same length and was written within one tick of the file
// system's clock; reading a small file costs microseconds, and the admin
// API is not the hot path.) A file that cannot be read denies everyone: an
// admin API that opens up when its secret goes missing is worse than one
// that closes. Probes and the metrics scrape stay open.
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := s.table.Load().cfg.TokenFile()
		if path == "" {
			// Without a token, a web page in a browser on this host could
			// rebind its own name to 127.0.0.1 and read the samples as
			// same-origin. On loopback, where no token is needed, only
			// requests naming this machine by address or as localhost are
			// served.
			if loopback(s.cfg.AdminListen) && !localHost(r.Host) {
				writeText(w, http.StatusForbidden, "forbidden: the admin API without a token answers Host localhost or an IP address only\n")
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		// The scheme is case-insensitive (RFC 9110 §11.1): some clients
		// send "bearer".
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		want, err := readToken(path)
		if err != nil {
			s.logTokenError(path, err)
		}
		if !ok || err != nil || subtle.ConstantTimeCompare(bytes.TrimSpace([]byte(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="strangler admin"`)
			writeText(w, http.StatusUnauthorized, "unauthorized: this endpoint needs Authorization: Bearer <admin token>\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// localHost reports whether a request's Host names this machine without a
// name a stranger could point here: an IP address or localhost, with or
// without a port.
func localHost(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host: never a browser's request
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost")
}

// logTokenError says why the admin API denies everyone, at most once a
// minute (every request would say it again, and anyone who reaches the
// port can send them). The answer stays a plain 401: that the secret is
// missing is the operator's to know, not the caller's.
func (s *Server) logTokenError(path string, err error) {
	now := time.Now().UnixNano()
	last := s.tokenLogged.Load()
	if now-last < int64(time.Minute) || !s.tokenLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Error("admin token file cannot be read: /api/* denies everyone until it can", "admin_token_file", path, "error", err.Error())
}
