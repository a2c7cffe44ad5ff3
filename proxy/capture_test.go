package proxy

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
)

// Answers between 16 and 64 KiB with a Content-Length are held in a pooled
// buffer charged in full to shadow_memory; the rest grow their own, charged
// per write. Either way the bytes are the answer's, and release gives back
// everything it took.
func TestCaptureBuffersAndBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		length     int
		header     bool // the answer announces its Content-Length
		limit      int64
		wantPooled bool
		wantOver   bool
	}{
		{name: "40 KiB, room for a buffer", length: 40 << 10, header: true, limit: 1 << 20, wantPooled: true},
		{name: "64 KiB exactly", length: 64 << 10, header: true, limit: 1 << 20, wantPooled: true},
		{name: "40 KiB, room for the body but not a buffer", length: 40 << 10, header: true, limit: 50 << 10},
		{name: "40 KiB, no room", length: 40 << 10, header: true, limit: 30 << 10, wantOver: true},
		{name: "1 KiB", length: 1 << 10, header: true, limit: 1 << 20},
		{name: "100 KiB", length: 100 << 10, header: true, limit: 1 << 20},
		{name: "40 KiB, no Content-Length", length: 40 << 10, limit: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			budget := &memBudget{limit: tt.limit}
			want := bytes.Repeat([]byte("0123456789abcdef"), tt.length/16)
			// Twice: the second capture may get the first one's buffer back,
			// and must not see its bytes.
			for round := range 2 {
				c := &capture{max: 1 << 20, budget: budget, header: http.Header{}}
				if tt.header {
					c.header.Set("Content-Length", strconv.Itoa(tt.length))
				}
				for rest := want; len(rest) > 0; {
					n := min(len(rest), 4000)
					c.Write(rest[:n])
					rest = rest[n:]
				}
				if c.overBudget != tt.wantOver {
					t.Fatalf("round %d: overBudget %v, want %v", round, c.overBudget, tt.wantOver)
				}
				if !tt.wantOver && !bytes.Equal(c.body, want) {
					t.Fatalf("round %d: body of %d bytes differs from the answer's %d", round, len(c.body), len(want))
				}
				if c.pooled != tt.wantPooled {
					t.Fatalf("round %d: pooled %v, want %v", round, c.pooled, tt.wantPooled)
				}
				if used := budget.used.Load(); used > tt.limit || (tt.wantPooled && used != int64(captureBufs.size)) {
					t.Fatalf("round %d: budget used %d (limit %d)", round, used, tt.limit)
				}
				c.release()
				if used := budget.used.Load(); used != 0 {
					t.Fatalf("round %d: %d bytes still charged after release", round, used)
				}
				if c.body != nil && c.pooled {
					t.Fatalf("round %d: released capture still holds its pooled buffer", round)
				}
			}
		})
	}
}
