package proxy

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
)

// Answers of up to 64 KiB with a Content-Length are held in the smallest
// pooled buffer they fit (4, 16 or 64 KiB), charged in full to
// shadow_memory; the rest grow their own, charged per write. Either way
// the bytes are the answer's, and release gives back everything it took.
func TestCaptureBuffersAndBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		length   int
		header   bool // the answer announces its Content-Length
		limit    int64
		wantPool int // size of the pooled buffer; 0: none
		wantOver bool
	}{
		{name: "40 KiB, room for a buffer", length: 40 << 10, header: true, limit: 1 << 20, wantPool: 64 << 10},
		{name: "64 KiB exactly", length: 64 << 10, header: true, limit: 1 << 20, wantPool: 64 << 10},
		{name: "16 KiB and a byte", length: 16<<10 + 16, header: true, limit: 1 << 20, wantPool: 64 << 10},
		{name: "10 KiB", length: 10 << 10, header: true, limit: 1 << 20, wantPool: 16 << 10},
		{name: "4 KiB exactly", length: 4 << 10, header: true, limit: 1 << 20, wantPool: 4 << 10},
		{name: "1 KiB", length: 1 << 10, header: true, limit: 1 << 20, wantPool: 4 << 10},
		{name: "40 KiB, room for the body but not a buffer", length: 40 << 10, header: true, limit: 50 << 10},
		{name: "1 KiB, room for the body but not a buffer", length: 1 << 10, header: true, limit: 2 << 10},
		{name: "40 KiB, no room", length: 40 << 10, header: true, limit: 30 << 10, wantOver: true},
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
				pool := 0
				if c.pool != nil {
					pool = c.pool.size
					if cap(c.body) != pool {
						t.Fatalf("round %d: body in a buffer of %d bytes from the %d-byte list", round, cap(c.body), pool)
					}
				}
				if pool != tt.wantPool {
					t.Fatalf("round %d: pooled buffer of %d bytes, want %d", round, pool, tt.wantPool)
				}
				if used := budget.used.Load(); used > tt.limit || (tt.wantPool > 0 && used != int64(tt.wantPool)) {
					t.Fatalf("round %d: budget used %d (limit %d)", round, used, tt.limit)
				}
				c.release()
				if used := budget.used.Load(); used != 0 {
					t.Fatalf("round %d: %d bytes still charged after release", round, used)
				}
				if tt.wantPool > 0 && (c.body != nil || c.pool != nil) {
					t.Fatalf("round %d: released capture still holds its pooled buffer", round)
				}
			}
		})
	}
}

// A free list hands back the buffer returned last (the one most likely
// still in cache), keeps at most max, and refuses a buffer of another
// size.
func TestBufferFreeList(t *testing.T) {
	t.Parallel()
	l := &bufferFreeList{size: 8, max: 2}
	a, b, c := l.get(), l.get(), l.get()
	if len(a) != 8 || cap(a) != 8 {
		t.Fatalf("fresh buffer: len %d cap %d, want 8 and 8", len(a), cap(a))
	}
	a[0], b[0], c[0] = 'a', 'b', 'c'
	l.put(a)
	l.put(b)
	l.put(c) // over max: dropped
	l.put(make([]byte, 16))
	if n := len(l.free); n != 2 {
		t.Fatalf("list keeps %d buffers, want 2", n)
	}
	if got := l.get(); got[0] != 'b' || len(got) != 8 {
		t.Fatalf("first get: buffer %q (len %d), want b's, full length", got[0], len(got))
	}
	if got := l.get(); got[0] != 'a' {
		t.Fatalf("second get: buffer %q, want a's", got[0])
	}
	if got := l.get(); got[0] != 0 {
		t.Fatalf("third get: buffer %q, want a new one", got[0])
	}
}
