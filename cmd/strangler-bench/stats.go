//go:build linux

package main

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// The latency histogram is log-linear, in the manner of HdrHistogram:
// values below subCount nanoseconds have a bucket each, and every power of
// two above is split into halfCount buckets, so a recorded value is off by
// less than 1/halfCount (1.6 %) wherever it falls, from nanoseconds to
// hours, in a fixed 30 KiB array that needs no allocation to record.
const (
	subBits    = 7
	subCount   = 1 << subBits // exact buckets for 0..127 ns
	halfCount  = subCount / 2 // buckets per power of two above that
	numBuckets = (64-subBits)*halfCount + subCount
)

// histogram counts latencies. It is not safe for concurrent use: each load
// worker records into its own and the results are merged at the end.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
	max    uint64 // nanoseconds
}

// bucketOf returns the bucket that counts v nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // ≥ 1
	top := v >> shift                // in [halfCount, subCount)
	return shift*halfCount + int(top)
}

// bucketHigh returns the largest value bucket b counts, which is what a
// percentile reports: never lower than the true value.
func bucketHigh(b int) uint64 {
	if b < subCount {
		return uint64(b)
	}
	shift := b/halfCount - 1
	top := uint64(b - shift*halfCount)
	return top<<shift + (1<<shift - 1)
}

// record counts one latency; a negative one (a clock step) counts as zero.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.total++
	h.max = max(h.max, v)
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// percentile returns the latency at or below which p percent (0..100) of
// the recorded values fall: the smallest bucket whose cumulative count
// reaches ⌈p/100 × total⌉, reported as that bucket's highest value but
// never above the largest value recorded. Empty: 0.
func (h *histogram) percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	// Less a hair: 99.9/100 is 0.9990000000000001 in floating point, and
	// with 1,000 values the rank would be the 1,000th, the maximum.
	rank := uint64(math.Ceil(p*float64(h.total)/100 - 1e-9))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketHigh(b), h.max))
		}
	}
	return time.Duration(h.max)
}

// spread summarises one figure over the runs of a configuration: the
// median is what the table shows, the range says how much to trust it.
type spread struct {
	med, min, max float64
	n             int
}

// spreadOf returns the median (the mean of the two middle values for an
// even count), minimum and maximum of xs; the zero spread for none.
func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{med: med, min: s[0], max: s[n-1], n: n}
}
