//go:build linux

package main

import (
	"math"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueWithinOnePercentAndAHalf(t *testing.T) {
	t.Parallel()
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 999_999, 1 << 40, math.MaxUint64}
	for v := uint64(1); v < 1<<62; v = v*3 + 1 {
		vals = append(vals, v)
	}
	for _, v := range vals {
		b := bucketOf(v)
		if b < 0 || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside 0..%d", v, b, numBuckets-1)
		}
		hi := bucketHigh(b)
		if hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if v >= subCount && float64(hi-v) > float64(v)/halfCount {
			t.Errorf("bucket of %d reports %d: off by more than 1/%d", v, hi, halfCount)
		}
		if b > 0 && bucketHigh(b-1) >= v {
			t.Errorf("value %d also fits the bucket below (%d)", v, bucketHigh(b-1))
		}
	}
}

func TestPercentileOfExactSmallValues(t *testing.T) {
	t.Parallel()
	var h histogram
	for v := 1; v <= 100; v++ { // 1..100 ns, each its own bucket
		h.record(time.Duration(v))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {1, 1}, {50, 50}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}} {
		if got := h.percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestPercentileNeverAboveMaxAndMergeAddsUp(t *testing.T) {
	t.Parallel()
	var a, b histogram
	for range 990 {
		a.record(time.Millisecond)
	}
	for range 10 {
		b.record(130 * time.Millisecond)
	}
	b.record(-time.Second) // a clock step counts as zero
	a.merge(&b)
	if a.total != 1001 {
		t.Fatalf("total %d, want 1001", a.total)
	}
	if got := a.percentile(50); got < time.Millisecond || got > time.Millisecond*101/100 {
		t.Errorf("p50 = %v, want 1ms within 1 %%", got)
	}
	if got := a.percentile(99.9); got != 130*time.Millisecond {
		t.Errorf("p99.9 = %v, want exactly the max 130ms (clamped)", got)
	}
	if got := a.percentile(0); got != 0 {
		t.Errorf("p0 = %v, want 0 (the clock step)", got)
	}
	var empty histogram
	if got := empty.percentile(99); got != 0 {
		t.Errorf("empty p99 = %v, want 0", got)
	}
}

func TestSpreadOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{7}, spread{7, 7, 7, 1}},
		{[]float64{3, 1, 2}, spread{2, 1, 3, 3}},
		{[]float64{4, 1, 3, 2}, spread{2.5, 1, 4, 4}},
	} {
		in := append([]float64(nil), tc.in...)
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("spreadOf reordered its argument")
			}
		}
	}
}

// p99.9 of 1,000 values is the 999th, not the maximum: the rank must not
// suffer floating point (99.9/100 is 0.9990000000000001).
func TestPercentileRankOfAThousand(t *testing.T) {
	t.Parallel()
	var h histogram
	for range 999 {
		h.record(time.Millisecond)
	}
	h.record(100 * time.Millisecond)
	if got := h.percentile(99.9); got > 2*time.Millisecond {
		t.Errorf("p99.9 of 999 × 1 ms and 1 × 100 ms = %v, want about 1 ms", got)
	}
	if got := h.percentile(100); got != 100*time.Millisecond {
		t.Errorf("p100 = %v, want the maximum", got)
	}
}
