//go:build linux

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestBackendBodiesAndCounts(t *testing.T) {
	t.Parallel()
	b := newBackend()
	for _, tc := range []struct {
		target string
		shadow bool
		size   int
	}{
		{"/plain/7?size=1k", false, smallBody},
		{"/api/orders/7?size=64k", false, largeBody},
		{"/api/orders/7", true, smallBody},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.target, nil)
		if tc.shadow {
			req.Header.Set("X-Strangler-Shadow", "1")
		}
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.Len() != tc.size || rec.Header().Get("Content-Length") != strconv.Itoa(tc.size) {
			t.Errorf("%s: %d, %d bytes, Content-Length %q; want 200, %d", tc.target, rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"), tc.size)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s: body is not JSON", tc.target)
		}
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, countsPath, nil))
	var c backendCounts
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || c != (backendCounts{Primaries: 2, Shadows: 1}) {
		t.Errorf("counts %+v, %v; want 2 primaries, 1 shadow (the counts request not counted)", c, err)
	}
}
