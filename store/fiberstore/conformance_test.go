package fiberstore

import (
	"testing"

	"github.com/mpsession/mpsession/store"
	"github.com/mpsession/mpsession/store/storetest"
)

// TestConformance runs the store conformance suite on every backend. The SQL backends
// share one table per run (the suite's ids are random); memory gets one storage per
// store.
//
// CrossProcess stays nil: across processes this store keeps only what the package doc
// lists, and the suite's cross-process checks ask for more (events, exact tickets).
// TestBackends/*/SecondInstance checks what two instances do keep. Expiry events are
// checked: the store sends EventExpired when an operation finds a session expired while
// the backend still holds its blob (at least two seconds after expiry).
func TestConformance(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			var shared Storage
			if bc.name != "Memory" {
				shared, _ = bc.open(t)
			}
			storetest.Run(t, storetest.Config{
				New: func(t *testing.T, maxRecordBytes int) store.Store {
					storage := shared
					if storage == nil {
						storage, _ = bc.open(t)
					}
					return newStore(t, storage, Config{MaxRecordBytes: maxRecordBytes})
				},
			})
		})
	}
}

func BenchmarkStore(b *testing.B) {
	for _, bc := range backends {
		b.Run(bc.name, func(b *testing.B) {
			storage, _ := bc.open(b)
			storetest.Bench(b, newStore(b, storage))
		})
	}
}
