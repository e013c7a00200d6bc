// Package dumptest checks that a store, after real logins, holds no secret in any form
// its reader could use: the tests of each store log users in through fibermp, read back
// everything the store wrote, and look there for each secret in every common encoding.
//
//	secrets, clear := dumptest.Logins(t, st)
//	dump := readEverything(t) // one Entry per key, field, member, column...
//	if !dumptest.Holds(dump, clear) {
//		t.Fatal("the dump misses what the store keeps")
//	}
//	dumptest.Check(t, dump, secrets)
package dumptest
