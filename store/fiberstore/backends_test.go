package fiberstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/storage/memory/v2"
	"github.com/gofiber/storage/mysql/v2"
	"github.com/gofiber/storage/postgres/v3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mpsession/mpsession/internal/testenv"
)

// A backend under test: a fresh Storage, and a way to read back every key and value it
// holds, to check what the store wrote.
type backendCase struct {
	name string
	open func(t testing.TB) (Storage, func() map[string][]byte)
}

var backends = []backendCase{
	{"Memory", openMemory},
	{"MySQL", openMySQL},
	{"Postgres", openPostgres},
}

func openMemory(t testing.TB) (Storage, func() map[string][]byte) {
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	return st, func() map[string][]byte {
		keys, err := st.Keys()
		if err != nil {
			t.Fatalf("memory Keys: %v", err)
		}
		out := make(map[string][]byte, len(keys))
		for _, k := range keys {
			v, err := st.Get(string(k))
			if err != nil {
				t.Fatalf("memory Get: %v", err)
			}
			out[string(k)] = v
		}
		return out
	}
}

// tableSeq and the process id make table names unique per test run, so runs on one
// server (several packages, several machines' CI jobs) never share a table.
var tableSeq atomic.Int64

func uniqueTable() string {
	return fmt.Sprintf("mpsession_fiberstore_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, tableSeq.Add(1))
}

// mustNew turns a driver's panic in New (they panic on any database error) into a test
// failure.
func mustNew[S any](t testing.TB, what string, newFn func() S) (s S) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s: New panicked: %v", what, p)
		}
	}()
	return newFn()
}

func openMySQL(t testing.TB) (Storage, func() map[string][]byte) {
	db, _ := testenv.MySQL(t)
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	table := uniqueTable()
	st := mustNew(t, "mysql", func() *mysql.Storage { return mysql.New(mysql.Config{Db: db, Table: table}) })
	t.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
		st.Close() // stops the driver's GC goroutine and closes db
	})
	// The driver's BLOB column holds 65,535 bytes, less than a record at the default
	// limit; the package doc tells users to make this change.
	if _, err := db.Exec("ALTER TABLE " + table + " MODIFY v MEDIUMBLOB NOT NULL"); err != nil {
		t.Fatalf("alter %s: %v", table, err)
	}
	return st, func() map[string][]byte {
		rows, err := db.Query("SELECT k, v FROM " + table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		return scanRows(t, rows)
	}
}

func openPostgres(t testing.TB) (Storage, func() map[string][]byte) {
	const env = "MPSESSION_POSTGRES_DSN"
	dsns := []string{os.Getenv(env)}
	if dsns[0] == "" {
		dsns = []string{
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
			"postgres://root@127.0.0.1:5432/test?sslmode=disable",
		}
	}
	var (
		pool *pgxpool.Pool
		err  error
	)
	for _, dsn := range dsns {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		pool, err = pgxpool.New(ctx, dsn)
		if err == nil {
			if err = pool.Ping(ctx); err != nil {
				pool.Close()
			}
		}
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		testenv.Unavailable(t, "%s at %s is not reachable (%v); start it or set %s", "Postgres", dsns[len(dsns)-1], err, env)
	}
	table := uniqueTable()
	st := mustNew(t, "postgres", func() *postgres.Storage { return postgres.New(postgres.Config{DB: pool, Table: table}) })
	t.Cleanup(func() {
		if _, err := pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+table); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
		st.Close() // stops the driver's GC goroutine and closes the pool
	})
	return st, func() map[string][]byte {
		rows, err := pool.Query(context.Background(), "SELECT k, v FROM "+table)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		defer rows.Close()
		out := map[string][]byte{}
		for rows.Next() {
			var (
				k string
				v []byte
			)
			if err := rows.Scan(&k, &v); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			out[k] = v
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		return out
	}
}

func scanRows(t testing.TB, rows *sql.Rows) map[string][]byte {
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var (
			k string
			v []byte
		)
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatalf("dump: %v", err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return out
}
