//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Peer names, in table order.
const (
	peerDirect    = "direct"     // no proxy: the load goes straight to the monolith; the limit
	peerStrangler = "strangler"  // this project
	peerNginx     = "nginx"      // split_clients + mirror: the usual way to do this without Strangler
	peerHAProxy   = "haproxy"    // weighted servers, hashed on the header; no mirror
	peerGoHTTP    = "go-nethttp" // a floor: the least a proxy on net/http's server costs (floor.go)
	peerGoNet     = "go-net"     // a floor: the least a proxy on Go's net package costs (floor.go)
)

// floorScenarios are the scenarios the floors run in when every peer is
// selected (-peers all): the ones the CPU targets are set for, and few
// enough to keep the whole run near 10 minutes. Named in -peers, they run
// every scenario but idle.
var floorScenarios = []string{"split-1k", "shadow-1k"}

// isFloor reports whether name is one of the floors.
func isFloor(name string) bool { return name == peerGoHTTP || name == peerGoNet }

// peer is one thing the load can go through to reach the backends.
type peer struct {
	name    string
	bin     string // executable; "" for direct
	version string // one line, for the header
	missing string // why it cannot run here ("not installed"); "" if it can
	// goRuntime marks a peer written in Go (Strangler and the floors): the
	// peers -godebug applies to.
	goRuntime bool
	// command writes the peer's configuration for sc into dir and returns
	// its command line. Nil for direct, which starts nothing.
	command func(bin, dir string, sc scenario, ep endpoints) ([]string, error)
	// unsupported says why the peer cannot run sc ("n/a (no mirror)"), or "".
	unsupported func(sc scenario) string
}

// env is the peer's environment: base, and -godebug's GODEBUG for a peer
// written in Go. nginx and HAProxy get base alone.
func (p *peer) env(base []string, godebug string) []string {
	if !p.goRuntime {
		return base
	}
	return withGodebug(base, godebug)
}

// endpoints are the loopback host:port addresses of one cell.
type endpoints struct {
	listen   string // the peer's proxy port
	admin    string // Strangler's admin port
	monolith string
	service  string
}

// readyURLs are polled, in order, until each answers 200 before a cell's
// load starts: Strangler's /readyz (flags loaded), then a request through
// the peer, which also proves the route to the monolith works.
func (p *peer) readyURLs(ep endpoints) []string {
	through := "http://" + ep.listen + "/plain/0?size=1k"
	if p.name == peerStrangler {
		return []string{"http://" + ep.admin + "/readyz", through}
	}
	return []string{through}
}

// discoverPeers finds (or, for Strangler, builds into dir) each named peer.
// A peer that cannot run is returned with missing set, so that the table
// says so instead of leaving it out.
func discoverPeers(ctx context.Context, names []string, allPeers bool, self, dir, stranglerBin string) []*peer {
	var out []*peer
	for _, name := range names {
		p := &peer{name: name, unsupported: func(scenario) string { return "" }}
		switch name {
		case peerDirect:
		case peerStrangler:
			p.goRuntime = true
			p.command = stranglerCommand
			p.bin, p.missing = buildStrangler(ctx, dir, stranglerBin)
			if p.missing == "" {
				p.version = firstLine(commandOutput(ctx, p.bin, "version"))
				if stranglerBin == "" { // built from this checkout: say which
					p.version += " @ " + firstLine(commandOutput(ctx, "git", "describe", "--always", "--dirty"))
				}
			}
		case peerNginx:
			p.command = nginxCommand
			if p.bin = lookBin("nginx"); p.bin == "" {
				p.missing = "not installed"
			} else {
				p.version = strings.TrimPrefix(firstLine(commandOutput(ctx, p.bin, "-v")), "nginx version: ")
			}
		case peerHAProxy:
			p.command = haproxyCommand
			p.unsupported = func(sc scenario) string {
				if sc.kind == kindShadow {
					return "n/a (no mirror)"
				}
				return ""
			}
			if p.bin = lookBin("haproxy"); p.bin == "" {
				p.missing = "not installed"
			} else if m := regexp.MustCompile(`HAProxy version (\S+)`).FindStringSubmatch(commandOutput(ctx, p.bin, "-v")); m != nil {
				p.version = "haproxy/" + m[1]
			}
		case peerGoHTTP, peerGoNet:
			p.goRuntime = true
			p.bin = self
			p.command = func(bin, _ string, sc scenario, ep endpoints) ([]string, error) {
				argv := []string{bin, floorFlag, name, ep.listen, ep.monolith, ep.service}
				if sc.kind == kindShadow {
					argv = append(argv, kindShadow)
				}
				return argv, nil
			}
			p.unsupported = func(sc scenario) string {
				switch {
				case sc.kind == kindIdle:
					return "n/a (a floor's idle connections are net/http's or a goroutine's)"
				case allPeers && !slices.Contains(floorScenarios, sc.name):
					return "n/a (with -peers all, floors run " + strings.Join(floorScenarios, " and ") + " only)"
				}
				return ""
			}
		}
		out = append(out, p)
	}
	return out
}

// lookBin finds a server binary on PATH or in the sbin folders a non-root
// PATH may lack; "" if none.
func lookBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// buildStrangler returns the Strangler binary: prebuilt if given, else
// built once into dir from the module the harness runs in. On failure it
// returns why, as the peer's missing reason.
func buildStrangler(ctx context.Context, dir, prebuilt string) (bin, missing string) {
	if prebuilt != "" {
		if _, err := os.Stat(prebuilt); err != nil {
			return "", "binary: " + err.Error()
		}
		return prebuilt, ""
	}
	bin = filepath.Join(dir, "strangler")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/strangler-proxy/strangler/cmd/strangler").CombinedOutput()
	if err != nil {
		return "", "build failed: " + strings.TrimSpace(lastLine(string(out))+" "+err.Error())
	}
	return bin, ""
}

// commandOutput runs a version command (bounded) and returns what it wrote
// to stdout and stderr (nginx -v writes to stderr).
func commandOutput(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out)
}

// firstLine returns s up to its first newline, trimmed.
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// writeFiles writes name → content into dir.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// stranglerFlags is the flag file of every scenario: the route at 10 %.
const stranglerFlags = `{"flags":{"orders-percent":{"state":"ENABLED","variants":{"on":10},"defaultVariant":"on"}}}` + "\n"

// stranglerConfig is Strangler's config for sc: no route for plain (every
// request goes to the monolith), the orders route at 10 % for split, and
// with every request shadowed and compared for shadow.
func stranglerConfig(sc scenario, ep endpoints) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nadmin_listen: %s\nmonolith: http://%s\nflags: {file: flags.json}\n", ep.listen, ep.admin, ep.monolith)
	if !sc.routed() {
		return b.String()
	}
	fmt.Fprintf(&b, "routes:\n  - name: orders\n    path: /api/orders/*\n    service: http://%s\n    sticky: header:X-User-Id\n", ep.service)
	if sc.kind == kindShadow {
		b.WriteString("    shadow: {percent: 100}\n")
	}
	return b.String()
}

// stranglerCommand writes Strangler's config and flag file into dir.
func stranglerCommand(bin, dir string, sc scenario, ep endpoints) ([]string, error) {
	cfg := filepath.Join(dir, "strangler.yaml")
	err := writeFiles(dir, map[string]string{"strangler.yaml": stranglerConfig(sc, ep), "flags.json": stranglerFlags})
	return []string{bin, "serve", "--config", cfg, "--log-level", "warn"}, err
}

// nginxHeaders are the request headers nginx sets upstream, matching what
// Strangler sends (client Host, X-Forwarded-*, keep-alive upstream). They
// are repeated in every location that adds one, because nginx inherits
// proxy_set_header only into blocks that set none.
const nginxHeaders = `proxy_set_header Host $host;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;`

// nginxConfig is nginx's config for sc, with prefix as its private folder:
// one worker, keep-alive upstreams, no access log, buffers large enough
// that a 64 KiB answer never touches disk. split_clients hashes the route
// name and X-User-Id into the same 10 % Strangler sends to the service;
// for shadow, mirror sends a copy to the other side (and discards the
// answer: nginx cannot compare).
func nginxConfig(sc scenario, ep endpoints, prefix string) string {
	var loc string
	switch sc.kind {
	case kindSplit:
		loc = `
        location /api/orders/ {
            proxy_pass http://$orders_primary;
        }`
	case kindShadow:
		loc = `
        location /api/orders/ {
            mirror /_shadow;
            proxy_pass http://$orders_primary;
        }
        location = /_shadow {
            internal;
            ` + nginxHeaders + `
            proxy_set_header X-Strangler-Shadow 1;
            proxy_pass http://$orders_shadow$request_uri;
        }`
	}
	return fmt.Sprintf(`# generated by strangler-bench for scenario %[1]s
worker_processes 1;
daemon off;
master_process on;
pid %[2]s/nginx.pid;
error_log stderr warn;
worker_rlimit_nofile 8192;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_timeout 90s;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
    proxy_max_temp_file_size 0;
    upstream monolith {
        server %[3]s;
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 90s;
    }
    upstream service {
        server %[4]s;
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 90s;
    }
    split_clients "orders${http_x_user_id}" $orders_primary {
        10%% service;
        * monolith;
    }
    map $orders_primary $orders_shadow {
        service monolith;
        default service;
    }
    server {
        listen %[5]s;
        %[6]s
        location / {
            proxy_pass http://monolith;
        }%[7]s
    }
}
`, sc.name, prefix, ep.monolith, ep.service, ep.listen, nginxHeaders, loc)
}

// nginxCommand writes nginx's config into dir, which is also its prefix.
func nginxCommand(bin, dir string, sc scenario, ep endpoints) ([]string, error) {
	conf := filepath.Join(dir, "nginx.conf")
	err := writeFiles(dir, map[string]string{"nginx.conf": nginxConfig(sc, ep, dir)})
	return []string{bin, "-e", "stderr", "-p", dir, "-c", conf}, err
}

// haproxyConfig is HAProxy's config for sc: one thread, keep-alive both
// ways with server connections reused across clients, X-Forwarded-For. The
// split hashes X-User-Id over servers weighted 10/90 (map-based, so the
// weights are the shares). HAProxy has no mirror, so no shadow config.
func haproxyConfig(sc scenario, ep endpoints) string {
	route := ""
	if sc.routed() {
		route = "    use_backend orders if { path_beg /api/orders/ }\n"
	}
	return fmt.Sprintf(`# generated by strangler-bench for scenario %s
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 90s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 90s
    option forwardfor
    http-reuse always
frontend proxy
    bind %s
%s    default_backend monolith
backend monolith
    server monolith %s
backend orders
    balance hdr(X-User-Id)
    hash-type map-based
    server service %s weight 10
    server monolith %s weight 90
`, sc.name, ep.listen, route, ep.monolith, ep.service, ep.monolith)
}

// haproxyCommand writes HAProxy's config into dir; -db keeps it in the
// foreground.
func haproxyCommand(bin, dir string, sc scenario, ep endpoints) ([]string, error) {
	conf := filepath.Join(dir, "haproxy.cfg")
	err := writeFiles(dir, map[string]string{"haproxy.cfg": haproxyConfig(sc, ep)})
	return []string{bin, "-db", "-f", conf}, err
}
