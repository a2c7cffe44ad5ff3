package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strangler-proxy/strangler/proxy"
)

// The demo is a whole migration in one process: a monolith that serves
// orders and users, an extracted orders service that differs from it on
// purpose (it returns the order total as a string), and the proxy at 10 %
// in front of both, configured by real files that `strangler ramp` can edit
// while it runs.

const demoFlags = `{
  "flags": {
    "orders-percent": {
      "state": "ENABLED",
      "variants": {"on": %s},
      "defaultVariant": "on"
    }
  }
}
`

const demoConfig = `# Written by "strangler demo"; edit it or ramp it while the demo runs.
listen: %s
admin_listen: %s
monolith: %s
flags:
  file: flags.json
routes:
  - name: orders
    path: /api/orders/*
    service: %s
    sticky: header:X-User-Id
    shadow:
      percent: 100
      noise: true
      ignore_headers: [X-Served-By]
`

func demo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "[--listen ADDR] [--admin ADDR] [--percent PCT] [--requests N]", args, stdout, stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "proxy address (by default, a free port if 8080 is taken)")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin address (by default, a free port if 9090 is taken)")
	percent := fs.String("percent", "10", "starting percentage of orders traffic for the service")
	requests := fs.Int("requests", 200, "requests to send through the proxy at start")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return badArgs("demo: unexpected argument %q", pos[0])
	}
	pct, ok := parsePercent(*percent)
	if !ok {
		return badArgs("demo: --percent %q: want a number from 0 to 100", *percent)
	}
	if *requests < 0 {
		return badArgs("demo: --requests %d: want 0 or more", *requests)
	}
	for _, a := range []struct{ flag, addr string }{{"listen", *listen}, {"admin", *adminAddr}} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil || port == "" || !validPort(port) {
			return badArgs("demo: --%s %q: want host:port (127.0.0.1:8080)", a.flag, a.addr)
		}
	}
	rampTo := "50" // the suggested ramp changes something
	if pct == 50 {
		rampTo = "100"
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	mono, err := startBackend(demoMonolith())
	if err != nil {
		return err
	}
	defer mono.Close()
	svc, err := startBackend(demoService())
	if err != nil {
		return err
	}
	defer svc.Close()

	// An address the operator chose is used or refused; only the
	// defaults move aside for a port that is taken.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	ln, err := listenOrAny(*listen, !set["listen"])
	if err != nil {
		return err
	}
	admin, err := listenOrAny(*adminAddr, !set["admin"])
	if err != nil {
		ln.Close()
		return err
	}
	dir, err := os.MkdirTemp("", "strangler-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "strangler.yaml")
	if err := os.WriteFile(filepath.Join(dir, "flags.json"), fmt.Appendf(nil, demoFlags, strconv.FormatFloat(pct, 'f', -1, 64)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, demoConfig, ln.Addr(), admin.Addr(), mono.URL, svc.URL), 0o644); err != nil {
		return err
	}
	cfg, err := loadChecked(cfgPath, false, func(w string) { fmt.Fprintln(stderr, "warning:", w) })
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := proxy.New(ctx, cfg, proxy.Options{Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, admin) }()

	proxyURL := "http://" + ln.Addr().String()
	adminURL := "http://" + admin.Addr().String()
	fmt.Fprintf(stdout, `Strangler demo
  proxy:    %s   (try: curl -H 'X-User-Id: alice' %s/api/orders/7)
  admin:    %s/api/routes
  metrics:  %s/metrics
  monolith: %s
  service:  %s   (differs on purpose: order totals as strings)
  config:   %s
  ramp it:  go run ./cmd/strangler ramp --config %s orders %s
`, proxyURL, proxyURL, adminURL, adminURL, mono.URL, svc.URL, cfgPath, cfgPath, rampTo)
	for _, m := range []struct{ flag, want, got string }{{"listen", *listen, ln.Addr().String()}, {"admin", *adminAddr, admin.Addr().String()}} {
		if !set[m.flag] && m.want != m.got { // a default that moved aside
			fmt.Fprintf(stdout, "  (%s was taken: %s is used instead)\n", m.want, m.got)
		}
	}

	if err := demoTraffic(ctx, proxyURL, *requests, stdout); err != nil {
		fmt.Fprintln(stderr, "demo traffic:", err)
	} else if *requests > 0 {
		demoDiff(ctx, adminURL, stdout)
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	return <-done
}

// demoTraffic sends requests as distinct users and reports where they went.
func demoTraffic(ctx context.Context, base string, n int, w io.Writer) error {
	if n <= 0 {
		return nil
	}
	client := &http.Client{Timeout: 5 * time.Second}
	served := map[string]int{}
	for i := range n {
		req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/orders/%d", base, i%25+1), nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-User-Id", fmt.Sprintf("user-%d", i))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		served[resp.Header.Get("X-Served-By")]++
	}
	fmt.Fprintf(w, "Sent %d order requests as %d users: %d served by the service, %d by the monolith.\n",
		n, n, served["service"], served["monolith"])
	return nil
}

// demoDiff shows one mismatch the comparison found, once the pool has
// compared some requests.
func demoDiff(ctx context.Context, adminURL string, w io.Writer) {
	var samples []proxy.DiffSample
	for range 50 {
		resp, err := http.Get(adminURL + "/api/diffs?route=orders&limit=1")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&samples)
			resp.Body.Close()
		}
		if len(samples) > 0 || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(samples) == 0 || len(samples[0].Differences) == 0 {
		return
	}
	d := samples[0].Differences[0]
	s := samples[0]
	fmt.Fprintf(w, "Shadow comparison found: %s %s: %s %s%s: %s=%s, %s=%s  (all: %s/api/diffs)\n",
		s.Method, s.Path, d.Kind, d.Pointer, d.Header, s.Primary.Backend, d.Primary, s.Shadow.Backend, d.Shadow, adminURL)
}

type backend struct {
	URL string
	srv *http.Server
}

func (b *backend) Close() { b.srv.Close() }

func startBackend(h http.Handler) (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return &backend{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

// listenOrAny listens on addr, or on a free port of the same host when addr
// is taken, so that the demo runs beside whatever else the machine serves.
func listenOrAny(addr string, orAny bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !orAny || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}

type order struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Currency string `json:"currency"`
	Total    any    `json:"total"`
	Items    []item `json:"items"`
}

type item struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func demoOrder(id string) order {
	return order{ID: id, Status: "shipped", Currency: "EUR", Total: 42.5, Items: []item{{"book-1", 1}, {"pen-7", 3}}}
}

func demoMonolith() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeDemoJSON(w, "monolith", demoOrder(r.PathValue("id")))
	})
	mux.HandleFunc("GET /api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeDemoJSON(w, "monolith", map[string]string{"id": r.PathValue("id"), "name": "User " + r.PathValue("id")})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "monolith")
		fmt.Fprintf(w, "the monolith answers %s %s\n", r.Method, r.URL.Path)
	})
	return mux
}

func demoService() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		o := demoOrder(r.PathValue("id"))
		o.Total = "42.50" // the extracted service's bug, for the comparison to find
		writeDemoJSON(w, "service", o)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "service")
		http.Error(w, "the orders service does not serve "+strings.TrimSpace(r.URL.Path), http.StatusNotFound)
	})
	return mux
}

func writeDemoJSON(w http.ResponseWriter, by string, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Served-By", by)
	json.NewEncoder(w).Encode(v)
}

// validPort reports whether port is a number a listener takes, or a
// service name (http), which the listener resolves.
func validPort(port string) bool {
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return n <= 65535
	}
	c := port[0] | 0x20 // a service name starts with a letter
	return 'a' <= c && c <= 'z'
}
