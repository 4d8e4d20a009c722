// hostile-collector: a stand-in for a collector image a tenant chose, for TracedApp's tests of
// export health under hostile input (fault injection on real pods; never shipped). It answers
// the sidecar's health probe on :13133 like the collector's health_check extension, and on its
// telemetry port :8888 serves a /metrics that is built to hurt whoever reads it:
//   - about 1 MiB of series naming invented exporters, each with a huge counter;
//   - the exporter names a real configuration renders, with counters near float64's top;
//   - every third reply is slow: it trickles for 30 s.
// It ignores its arguments (the collector's flags). Built by `cargo xtask setup` (static).
package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

func metrics() string {
	var b strings.Builder
	b.WriteString("# TYPE otelcol_exporter_sent_spans counter\n")
	for i := 0; b.Len() < 1<<20; i++ {
		fmt.Fprintf(&b, "otelcol_exporter_sent_spans{exporter=\"invented/%08d\"} 1e308\n", i)
		fmt.Fprintf(&b, "otelcol_exporter_send_failed_spans{exporter=\"invented/%08d\"} 1.7e308\n", i)
	}
	for _, real := range []string{"otlp_grpc/jaeger", "otlp/jaeger", "awsxray", "prometheus"} {
		fmt.Fprintf(&b, "otelcol_exporter_sent_spans{exporter=%q} 1.7976931348623157e308\n", real)
		fmt.Fprintf(&b, "otelcol_exporter_sent_spans_total{exporter=%q} 1e300\n", real)
		fmt.Fprintf(&b, "otelcol_exporter_queue_size{exporter=%q} 1e300\n", real)
	}
	return b.String()
}

func main() {
	body := metrics()
	var n atomic.Int64
	telemetry := http.NewServeMux()
	telemetry.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			// Slow: a byte a second for 30 s.
			flusher, _ := w.(http.Flusher)
			for i := 0; i < 30; i++ {
				if _, err := w.Write([]byte("#")); err != nil {
					return
				}
				if flusher != nil {
					flusher.Flush()
				}
				time.Sleep(time.Second)
			}
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	})
	go func() { _ = http.ListenAndServe(":8888", telemetry) }()
	health := http.NewServeMux()
	health.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"Server available"}`))
	})
	_ = http.ListenAndServe(":13133", health)
}
