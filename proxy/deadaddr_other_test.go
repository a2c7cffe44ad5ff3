//go:build !linux

package proxy

import "testing"

// deadURL is an address where a connection is refused: a closed
// listener's (another test may take the port; the unix version holds it).
func deadURL(t *testing.T) string {
	ln := listen(t)
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}
