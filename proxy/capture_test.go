package proxy

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
)

// Answers of up to 64 KiB with a Content-Length are held in the smallest
// pooled buffer they fit (4, 16 or 64 KiB), charged in full to
// shadow_memory; the rest grow their own (to the Content-Length, or
// doubling), charged by capacity, so the budget counts the memory really
// held. Either way the bytes are the answer's, and release gives back
// everything it took.
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
				// The head is charged too, apart.
				if c.headHeld != int64(headerBytes(c.header)) {
					t.Fatalf("round %d: head charged %d bytes, want %d", round, c.headHeld, headerBytes(c.header))
				}
				if used := budget.used.Load(); used > tt.limit || (tt.wantPool > 0 && used-c.headHeld != int64(tt.wantPool)) {
					t.Fatalf("round %d: budget used %d (limit %d)", round, used, tt.limit)
				}
				if used := budget.used.Load() - c.headHeld; !tt.wantOver && used != int64(cap(c.body)) {
					t.Fatalf("round %d: budget charged %d bytes for a body array of %d", round, used, cap(c.body))
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
	l := &bufferFreeList{size: 8}
	a := l.get()
	if len(a) != 8 || cap(a) != 8 {
		t.Fatalf("fresh buffer: len %d cap %d, want 8 and 8", len(a), cap(a))
	}
	// A buffer put back, even emptied, comes back whole. The pool may drop
	// what it is given (the race detector makes it drop one put in four),
	// so try a few times; with none kept, every get would be fresh.
	back := false
	for range 100 {
		a[0] = 'a'
		l.put(a[:0])
		got := l.get()
		if len(got) != 8 || cap(got) != 8 {
			t.Fatalf("buffer from the list: len %d cap %d, want 8 and 8", len(got), cap(got))
		}
		if &got[0] == &a[0] {
			back = true
			if got[0] != 'a' {
				t.Fatalf("the buffer put back came back holding %q, want its own byte", got[0])
			}
			break
		}
		a = got
	}
	if !back {
		t.Fatal("no buffer put back ever came back: the list keeps nothing")
	}
	// A buffer of another capacity is never kept: a get after it would
	// hand out a slice over memory that is not the list's size.
	for _, odd := range [][]byte{make([]byte, 16), make([]byte, 4), make([]byte, 0, 16)[:8]} {
		l.put(odd)
		for range 4 {
			if got := l.get(); len(got) != 8 || cap(got) != 8 || &got[0] == &odd[:1][0] {
				t.Fatalf("after putting a buffer of cap %d: got len %d cap %d, same array %v", cap(odd), len(got), cap(got), &got[0] == &odd[:1][0])
			}
		}
	}
}

// A get and put cost no allocation once the list holds a buffer: the pool
// holds a pointer, which needs no box.
func TestBufferFreeListAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector sync.Pool drops puts at random")
	}
	l := newBufferPool()
	if n := testing.AllocsPerRun(1000, func() { l.Put(l.Get()) }); n != 0 {
		t.Errorf("get and put: %v allocations, want 0", n)
	}
}

// BenchmarkBufferFreeList is the get and put every proxied request makes
// for its copy buffer, from every CPU at once: the list is shared by the
// whole server, so it must not serialise them.
func BenchmarkBufferFreeList(b *testing.B) {
	l := newBufferPool()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf := l.Get()
			buf[0] = 1
			l.Put(buf)
		}
	})
}
