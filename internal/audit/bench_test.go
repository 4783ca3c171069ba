package audit

import (
	"bytes"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// benchSink opens a sink with real fsync (unless noSync) on a temp file and
// counts its flushes.
func benchSink(b *testing.B, noSync bool) (*FileSink, *atomic.Int64) {
	b.Helper()
	var flushes atomic.Int64
	s, err := OpenFile(filepath.Join(b.TempDir(), "audit.log"), Options{
		NoSync:  noSync,
		OnFlush: func(int, time.Duration, error) { flushes.Add(1) },
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, &flushes
}

func report(b *testing.B, start time.Time, flushes *atomic.Int64) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(max(1, flushes.Load())), "events/batch")
}

// BenchmarkWriteParallel measures group commit with about 64 concurrent
// writers (32 per GOMAXPROCS) and real fsync.
func BenchmarkWriteParallel(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s, flushes := benchSink(b, bc.noSync)
			b.SetParallelism(32)
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ev := testEvent(1)
				for pb.Next() {
					ev.Time = testTime
					if err := s.Write(b.Context(), ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			report(b, start, flushes)
		})
	}
}

// BenchmarkWriteSerial is one writer: one fsync per event, the baseline
// group commit improves on.
func BenchmarkWriteSerial(b *testing.B) {
	s, flushes := benchSink(b, false)
	ev := testEvent(1)
	start := time.Now()
	for b.Loop() {
		ev.Time = testTime
		if err := s.Write(b.Context(), ev); err != nil {
			b.Fatal(err)
		}
	}
	report(b, start, flushes)
}

func BenchmarkVerify(b *testing.B) {
	in := join(chainLines(b, 10000, 1, ""))
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Verify(bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
