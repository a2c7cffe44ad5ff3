package proxy

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// adminAuth guards /api/* on the admin listener with a bearer token read
// from admin_token_file. The file is re-read when it changes (a rotated
// Kubernetes Secret), so a token can be rotated without a restart. Probes
// and the metrics scrape stay open.
type adminAuth struct {
	mu      sync.Mutex
	path    string
	modTime time.Time
	size    int64
	token   []byte
}

// readToken reads a token file: its content without surrounding white
// space, which must not be empty.
func readToken(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
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

// current returns the token for path, re-reading the file when its size or
// modification time changed. A file that cannot be read denies everyone:
// an admin API that opens up when its secret goes missing is worse than
// one that closes.
func (a *adminAuth) current(path string) []byte {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if path != a.path || !fi.ModTime().Equal(a.modTime) || fi.Size() != a.size {
		tok, err := readToken(path)
		if err != nil {
			return nil
		}
		a.path, a.modTime, a.size, a.token = path, fi.ModTime(), fi.Size(), tok
	}
	return a.token
}

// requireToken requires the token on h when the current config names a token file.
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := s.table.Load().cfg.TokenFile()
		if path == "" {
			h.ServeHTTP(w, r)
			return
		}
		// The scheme is case-insensitive (RFC 9110 §11.1): some clients
		// send "bearer".
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		ok = ok && strings.EqualFold(scheme, "Bearer")
		want := s.adminAuth.current(path)
		if !ok || want == nil || subtle.ConstantTimeCompare(bytes.TrimSpace([]byte(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="strangler admin"`)
			writeText(w, http.StatusUnauthorized, "unauthorized: this endpoint needs Authorization: Bearer <admin token>\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}
