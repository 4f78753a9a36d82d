package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguousAndTight(t *testing.T) {
	prevEnd := int64(0)
	for i := 0; i < histBuckets; i++ {
		lo, w := bucketRange(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevEnd)
		}
		if i >= histLinear && float64(w)/float64(lo) > 1.0/128 {
			t.Fatalf("bucket %d [%d,+%d) is wider than 1/128", i, lo, w)
		}
		for _, v := range []int64{lo, lo + w - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevEnd = lo + w
	}
	if bucketOf(-5) != 0 || bucketOf(1<<62) != histBuckets-1 {
		t.Fatal("out-of-range values are not clamped")
	}
}

func TestQuantilesMatchSorting(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, a, b hist
	var xs []int64
	for i := range 100_000 {
		v := int64(r.ExpFloat64() * 300e3) // ~300 µs mean, long tail
		xs = append(xs, v)
		h.record(time.Duration(v))
		if i%2 == 0 {
			a.record(time.Duration(v))
		} else {
			b.record(time.Duration(v))
		}
	}
	a.merge(&b)
	slices.Sort(xs)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(q*float64(len(xs))+0.999999999), 1)
		want := float64(xs[rank-1])
		for _, hh := range []*hist{&h, &a} {
			got := float64(hh.quantile(q))
			if got < want*0.99 || got > want*1.01 {
				t.Errorf("q%.3f = %.0f, exact %.0f", q, got, want)
			}
		}
	}
	if h.max != xs[len(xs)-1] || a.n != uint64(len(xs)) {
		t.Errorf("max %d n %d, want %d %d", h.max, a.n, xs[len(xs)-1], len(xs))
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := slices.Clone(c.in)
		if got := median(in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("median modified its input")
		}
	}
}
