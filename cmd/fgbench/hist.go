package main

import (
	"math/bits"
	"sort"
	"time"
)

// hist is a log-linear latency histogram in the manner of HdrHistogram:
// exact below 256 ns, then 128 sub-buckets per power of two, so any
// recorded value is known to within 1/128 (< 0.8 %). Recording is a few
// integer operations and never allocates; one per worker, merged at the end.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

const (
	histSubBits = 7                                     // 128 sub-buckets per octave
	histLinear  = 1 << (histSubBits + 1)                // values below are exact
	histOctaves = 40                                    // up to ~2^47 ns (~39 h)
	histBuckets = histLinear + histOctaves<<histSubBits // index space
)

// bucketOf maps a non-negative value to its bucket.
func bucketOf(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - (histSubBits + 1) // >= 1
	i := e<<histSubBits + int(uint64(v)>>uint(e))
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketRange is the half-open value range [lo, lo+width) of bucket i.
func bucketRange(i int) (lo, width int64) {
	if i < histLinear {
		return int64(i), 1
	}
	e := i>>histSubBits - 1
	sub := int64(i - e<<histSubBits)
	return sub << uint(e), 1 << uint(e)
}

func (h *hist) record(d time.Duration) {
	v := int64(d)
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q (0..1): the midpoint of the
// bucket that holds the ceil(q*n)-th smallest value, capped at the maximum.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999999)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			return time.Duration(min(lo+w/2, h.max))
		}
	}
	return time.Duration(h.max)
}

// median of xs (the mean of the middle two for an even count); xs is not
// modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
