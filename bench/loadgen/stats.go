package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// latencies summarises client-side latencies.
type latencies struct {
	N    int           `json:"n"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// summarize sorts ds in place and returns its percentiles (nearest rank).
func summarize(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return latencies{
		N: len(ds), Mean: sum / time.Duration(len(ds)),
		P50: rank(ds, 0.50), P90: rank(ds, 0.90), P99: rank(ds, 0.99), P999: rank(ds, 0.999), Max: ds[len(ds)-1],
	}
}

// rank returns the nearest-rank q-quantile of sorted ds.
func rank(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// promSample is one scrape of the Prometheus text format: series (name
// plus its label set as written, e.g. `x_bucket{le="0.01"}`) → value.
type promSample map[string]float64

// parseProm reads the text exposition format. It keeps every sample line
// and ignores comments; it is enough for keyferry's own /metrics.
func parseProm(r io.Reader) (promSample, error) {
	out := promSample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the label set; label
		// values may hold spaces, so split after the closing brace.
		rest := line
		series := ""
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			series, rest = line[:i+1], strings.TrimSpace(line[i+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("metrics: bad line %q", line)
			}
			series, rest = f[0], strings.Join(f[1:], " ")
		}
		f := strings.Fields(rest) // value [timestamp]
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: bad value in %q: %w", line, err)
		}
		out[series] = v
	}
	return out, sc.Err()
}

// delta returns after − before for every series of after.
func delta(before, after promSample) promSample {
	out := promSample{}
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// sumOf adds up the series of metric name whose label set contains every
// one of labels (each written as `key="value"`).
func (p promSample) sumOf(name string, labels ...string) float64 {
	var s float64
	for k, v := range p {
		if !hasName(k, name) || !hasLabels(k, labels) {
			continue
		}
		s += v
	}
	return s
}

func hasName(series, name string) bool {
	return series == name || strings.HasPrefix(series, name+"{")
}

func hasLabels(series string, labels []string) bool {
	for _, l := range labels {
		if !strings.Contains(series, l) {
			return false
		}
	}
	return true
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	le    float64
	count float64
}

// histogram returns the cumulative buckets of histogram name (restricted to
// series holding labels), sorted by upper bound, +Inf last.
func (p promSample) histogram(name string, labels ...string) []bucket {
	byLE := map[float64]float64{}
	for k, v := range p {
		if !hasName(k, name+"_bucket") || !hasLabels(k, labels) {
			continue
		}
		i := strings.Index(k, `le="`)
		if i < 0 {
			continue
		}
		s := k[i+4:]
		s = s[:strings.IndexByte(s, '"')]
		le, err := strconv.ParseFloat(s, 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		byLE[le] += v
	}
	out := make([]bucket, 0, len(byLE))
	for le, c := range byLE {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// quantile estimates the q-quantile of cumulative buckets by linear
// interpolation inside the bucket that holds it, like PromQL's
// histogram_quantile. A quantile in the +Inf bucket returns the highest
// finite bound. NaN when the histogram is empty.
func quantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].count
	want := q * total
	lowerLE, lowerCount := 0.0, 0.0
	for _, b := range bs {
		if b.count >= want {
			if math.IsInf(b.le, 1) {
				return lowerLE
			}
			if b.count == lowerCount {
				return b.le
			}
			return lowerLE + (b.le-lowerLE)*(want-lowerCount)/(b.count-lowerCount)
		}
		lowerLE, lowerCount = b.le, b.count
	}
	return lowerLE
}

// fractionBelow is the share of observations ≤ le (le must be a bucket
// bound).
func fractionBelow(le float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return math.NaN()
	}
	for _, b := range bs {
		if b.le == le {
			return b.count / bs[len(bs)-1].count
		}
	}
	return math.NaN()
}
