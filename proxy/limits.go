package proxy

import (
	"net"
	"net/http"
	"time"
)

// This file is the proxy's edge hardening: limits on slow and large
// requests, and the checks that keep hostile requests from getting past
// the proxy. (Being written: the functions below are the hooks the request
// path calls.)

// applyLimits sets the server-wide timeouts and sizes.
func (s *Server) applyLimits(srv *http.Server) {
	l := s.cfg.Limits
	srv.ReadHeaderTimeout = time.Duration(l.ReadHeaderTimeout)
	srv.IdleTimeout = time.Duration(l.IdleTimeout)
	srv.MaxHeaderBytes = int(l.MaxHeaderBytes)
}

// guardListener wraps the proxy's listener.
func (s *Server) guardListener(ln net.Listener) net.Listener { return ln }

// admit checks a request before routing; it answers and returns false for
// a request that must not be forwarded.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool { return true }

// limitBody enforces the route's max_body and the stall timeout.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request, rt *route) bool { return true }

// recoverPanic turns a panic while serving one request into a 500.
func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request, rt *route) {}
