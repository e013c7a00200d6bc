package metrics_test

import (
	"fmt"

	"github.com/mpsession/mpsession/metrics"
)

// Each hands out every value; an exporter turns them into its own kind. fibermp and
// wsauth count into the Metrics given to fibermp.Config.Metrics.
func ExampleMetrics_Each() {
	m := metrics.New()
	m.Each(func(s metrics.Sample) {
		if s.Kind == metrics.Histogram {
			fmt.Println(s.Name, "histogram, buckets up to", s.Bounds[len(s.Bounds)-1], "s")
		} else if s.Labels == nil {
			fmt.Println(s.Name, s.Value)
		}
	})
	// Output:
	// mpsession_store_calls_total 0
	// mpsession_store_errors_total 0
	// mpsession_store_call_seconds histogram, buckets up to 2.5 s
	// mpsession_sockets 0
	// mpsession_handles 0
	// mpsession_event_lag_seconds histogram, buckets up to 5 s
	// mpsession_sockets_too_slow_total 0
}
