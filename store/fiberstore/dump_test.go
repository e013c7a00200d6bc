package fiberstore

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/mpsession/mpsession/internal/dumptest"
)

// TestDumpHoldsNoSecret logs users in through fibermp against a store on MariaDB/MySQL
// and on Postgres, then reads every row of the storage table, key and value, and looks
// there for each secret of the logins in every common encoding.
func TestDumpHoldsNoSecret(t *testing.T) {
	for _, b := range []backendCase{
		{"MySQL", openMySQL},
		{"Postgres", openPostgres},
	} {
		t.Run(b.name, func(t *testing.T) {
			storage, dumpRows := b.open(t)
			st := New(storage)
			t.Cleanup(func() { _ = st.Close() })

			secrets, clear := dumptest.Logins(t, st)
			rows := dumpRows()
			var dump []dumptest.Entry
			for _, k := range slices.Sorted(maps.Keys(rows)) {
				dump = append(dump,
					dumptest.Entry{Where: fmt.Sprintf("%s row k=%q, column k", b.name, k), Data: []byte(k)},
					dumptest.Entry{Where: fmt.Sprintf("%s row k=%q, column v", b.name, k), Data: rows[k]})
			}
			if !dumptest.Holds(dump, clear) {
				t.Fatalf("the dump of %d entries does not hold the field the application set in clear (%q): it misses what the store keeps", len(dump), clear)
			}
			dumptest.Check(t, dump, secrets)
		})
	}
}
