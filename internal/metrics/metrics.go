// Package metrics defines keyferry's Prometheus metrics in one place, so
// that their names and labels are a documented contract (docs/api.md lists
// them). Components receive *Metrics and call its methods; a nil *Metrics
// records nothing.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector.
type Metrics struct {
	Registry *prometheus.Registry

	issuances     *prometheus.CounterVec
	issueLatency  prometheus.Histogram
	jwksFetches   *prometheus.CounterVec
	upstreamErrs  *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpLatency   *prometheus.HistogramVec
	revoked       *prometheus.CounterVec
	revokeLag     prometheus.Histogram
	revokeFailed  *prometheus.CounterVec
	irrevocable   prometheus.Counter
	backlog       prometheus.Gauge
	orphans       *prometheus.CounterVec
	auditStopped  *prometheus.GaugeVec
	auditFlushes  *prometheus.CounterVec
	auditBatch    prometheus.Histogram
	auditFlushDur prometheus.Histogram
}

// New registers every collector on a fresh registry (plus the Go and
// process collectors).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		issuances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_issuances_total",
			Help: "Credential requests by role and result (issued, or the refusal code).",
		}, []string{"role", "result"}),
		issueLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyferry_issuance_duration_seconds",
			Help:    "Time to serve a credential request, upstream call included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_jwks_fetches_total",
			Help: "JWKS and discovery fetches by issuer and result (ok, error).",
		}, []string{"issuer", "result"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_upstream_errors_total",
			Help: "Failed AWS calls by error code.",
		}, []string{"code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyferry_http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_revocations_total",
			Help: "Upstream revocations completed, by lease type.",
		}, []string{"type"}),
		revokeLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyferry_expiry_revocation_lag_seconds",
			Help:    "Time from a lease's expiry to the end of its upstream revocation.",
			Buckets: []float64{.1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 1800},
		}),
		revokeFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_revocation_failures_total",
			Help: "Failed upstream revocation attempts, by error code (each is retried with backoff).",
		}, []string{"code"}),
		irrevocable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyferry_irrevocable_leases_total",
			Help: "Leases given up on after the maximum number of revocation attempts.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyferry_revocation_backlog",
			Help: "Revocations due now and not yet done (queued or in flight).",
		}),
		orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_orphan_users_total",
			Help: "IAM users under keyferry's path owned by no live lease, by action (found in dry run, deleted, error).",
		}, []string{"action"}),
		auditStopped: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keyferry_background_stopped",
			Help: "1 while a background path (expiry, revocation, reconciler, orphan_sweep) is stopped because the audit log refuses its records.",
		}, []string{"path"}),
		auditFlushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyferry_audit_flushes_total",
			Help: "Audit log flushes (write + fsync) by result.",
		}, []string{"result"}),
		auditBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyferry_audit_flush_events",
			Help:    "Events written per audit flush (group commit size).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		auditFlushDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyferry_audit_flush_duration_seconds",
			Help:    "Time of one audit flush (write + fsync).",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128},
		}),
	}
	reg.MustRegister(m.issuances, m.issueLatency, m.jwksFetches, m.upstreamErrs, m.httpRequests, m.httpLatency,
		m.auditFlushes, m.auditBatch, m.auditFlushDur, m.revoked, m.revokeLag, m.revokeFailed, m.irrevocable, m.backlog, m.orphans, m.auditStopped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Issued records one credential request.
func (m *Metrics) Issued(role, result string, took time.Duration) {
	if m == nil {
		return
	}
	m.issuances.WithLabelValues(role, result).Inc()
	m.issueLatency.Observe(took.Seconds())
}

// UpstreamError records a failed AWS call.
func (m *Metrics) UpstreamError(code string) {
	if m == nil {
		return
	}
	m.upstreamErrs.WithLabelValues(code).Inc()
}

// JWKSFetch records a key fetch.
func (m *Metrics) JWKSFetch(issuer string, err error) {
	if m == nil {
		return
	}
	res := "ok"
	if err != nil {
		res = "error"
	}
	m.jwksFetches.WithLabelValues(issuer, res).Inc()
}

// HTTP records one HTTP request.
func (m *Metrics) HTTP(route, code string, took time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, code).Inc()
	m.httpLatency.WithLabelValues(route).Observe(took.Seconds())
}

// AuditFlush records one audit group commit.
func (m *Metrics) AuditFlush(events int, took time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.auditFlushes.WithLabelValues("error").Inc()
		return
	}
	m.auditFlushes.WithLabelValues("ok").Inc()
	m.auditBatch.Observe(float64(events))
	m.auditFlushDur.Observe(took.Seconds())
}

// Revoked records a finished upstream revocation; lag is the time since
// expiry for expiries, 0 otherwise.
func (m *Metrics) Revoked(leaseType string, lag time.Duration) {
	if m == nil {
		return
	}
	m.revoked.WithLabelValues(leaseType).Inc()
	if lag > 0 {
		m.revokeLag.Observe(lag.Seconds())
	}
}

// RevokeFailed records a failed revocation attempt.
func (m *Metrics) RevokeFailed(code string) {
	if m == nil {
		return
	}
	m.revokeFailed.WithLabelValues(code).Inc()
}

// Irrevocable records a lease given up on.
func (m *Metrics) Irrevocable() {
	if m == nil {
		return
	}
	m.irrevocable.Inc()
}

// Backlog sets the revocation backlog.
func (m *Metrics) Backlog(n int) {
	if m == nil {
		return
	}
	m.backlog.Set(float64(n))
}

// Orphan records an orphan sweep finding.
func (m *Metrics) Orphan(action string) {
	if m == nil {
		return
	}
	m.orphans.WithLabelValues(action).Inc()
}

// AuditStopped sets keyferry_background_stopped{path}.
func (m *Metrics) AuditStopped(path string, stopped bool) {
	if m == nil {
		return
	}
	v := 0.0
	if stopped {
		v = 1
	}
	m.auditStopped.WithLabelValues(path).Set(v)
}
