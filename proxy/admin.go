package proxy

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the operator's endpoints: probes, the route table
// and metrics. It is meant for a separate, private listener.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			writeText(w, http.StatusServiceUnavailable, "not ready\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	})
	mux.Handle("GET /api/routes", s.requireToken(http.HandlerFunc(s.apiRoutes)))
	mux.Handle("GET /api/diffs", s.requireToken(http.HandlerFunc(s.apiDiffs)))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorLog:          slogPrinter{s.log},
	}))
	return mux
}

// RouteStatus is one entry of GET /api/routes.
type RouteStatus struct {
	Name    string   `json:"name"`
	Path    string   `json:"path"`
	Methods []string `json:"methods,omitempty"`
	Service string   `json:"service"`
	Flag    string   `json:"flag"`
	Percent float64  `json:"percent"`
	// FlagError says why the flag cannot be used; the route's traffic then
	// stays on the monolith and Percent is 0.
	FlagError string `json:"flag_error,omitempty"`
	// FlagNote, for a flag with a targeting rule that gives no value
	// without a request (a variant named after the method), says so:
	// Percent is then 0, and each request gets what the rule gives it.
	FlagNote string `json:"flag_note,omitempty"`
	// NoiseFields are the fields found to differ between two answers of
	// the monolith itself, and so ignored in comparisons: JSON Pointers for
	// body fields, "header:Name" for headers.
	NoiseFields []string `json:"noise_fields"`
	// State is "serving", or "ejected" while the service is out of the
	// route after consecutive failures, until EjectedUntil.
	State        string     `json:"state"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	// FlagsStale, set while the last good flags are in force because the
	// source's latest state could not be applied, says why: Percent is then
	// the last good flags' value, and a ramp made since has not taken
	// effect here.
	FlagsStale string `json:"flags_stale,omitempty"`
}

func (s *Server) apiRoutes(w http.ResponseWriter, r *http.Request) {
	t := s.table.Load()
	var stale string
	if why := s.flagsStale.Load(); why != nil {
		stale = *why
	}
	out := make([]RouteStatus, 0, len(t.routes))
	for _, rt := range t.routes {
		st := RouteStatus{Name: rt.name, Path: rt.pattern, Methods: rt.methods, Service: rt.cfg.Service, Flag: rt.flag.Name(),
			NoiseFields: rt.shadow.state.noise.Fields(), FlagsStale: stale}
		if st.NoiseFields == nil {
			st.NoiseFields = []string{}
		}
		st.State = "serving"
		if until := rt.eject.ejectedUntil(time.Now()); !until.IsZero() {
			st.State, st.EjectedUntil = "ejected", &until
		}
		if v, err := rt.flag.Current(); unusable(rt.flag, err) {
			st.FlagError = err.Error()
		} else if err != nil {
			st.FlagNote = flagNote(err) + ": " + err.Error()
		} else {
			st.Percent = v
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(body))
}
