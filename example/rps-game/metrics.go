package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mpsession/mpsession/metrics"
)

// collector serves mpsession's metrics to Prometheus: each scrape reads them afresh.
type collector struct{ m *metrics.Metrics }

// Describe sends no descriptions: an unchecked collector, whose metrics are whatever
// Collect sends.
func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.Each(func(s metrics.Sample) {
		names := make([]string, 0, len(s.Labels))
		values := make([]string, 0, len(s.Labels))
		for k, v := range s.Labels {
			names, values = append(names, k), append(values, v)
		}
		desc := prometheus.NewDesc(s.Name, s.Help, names, nil)
		switch s.Kind {
		case metrics.Counter:
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, s.Value, values...)
		case metrics.Gauge:
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, s.Value, values...)
		case metrics.Histogram:
			buckets := make(map[float64]uint64, len(s.Bounds))
			for i, b := range s.Bounds {
				buckets[b] = s.Counts[i]
			}
			ch <- prometheus.MustNewConstHistogram(desc, s.Count, s.Sum, buckets, values...)
		}
	})
}
