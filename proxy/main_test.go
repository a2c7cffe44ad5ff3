package proxy

import (
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any goroutine outlives the tests: every
// server, shadow worker and flag watcher a test starts must be stopped by
// Close. Idle client connections of the tests' own clients are closed
// first, since they are the tests', not the proxy's.
func TestMain(m *testing.M) {
	code := m.Run()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(
			// flagd provider v0.6.0 leaks one goroutine per closed provider
			// (handleEvents ranges over a channel Shutdown never closes).
			goleak.IgnoreTopFunction("github.com/open-feature/go-sdk-contrib/providers/flagd/pkg.(*Provider).handleEvents"),
		); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
