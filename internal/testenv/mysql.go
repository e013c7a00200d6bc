package testenv

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver of database/sql
)

// MySQL opens the test MySQL/MariaDB (MPSESSION_MYSQL_DSN, or root@127.0.0.1:3306,
// database test) and returns it with its DSN; the caller closes db. When it cannot be
// reached the test fails in CI and skips elsewhere.
func MySQL(tb testing.TB) (db *sql.DB, dsn string) {
	tb.Helper()
	const env = "MPSESSION_MYSQL_DSN"
	if dsn = os.Getenv(env); dsn == "" {
		dsn = "root@tcp(127.0.0.1:3306)/test"
	}
	db, err := sql.Open("mysql", dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err != nil {
			_ = db.Close()
		}
	}
	if err != nil {
		Unavailable(tb, "MySQL/MariaDB at %s is not reachable (%v); start it or set %s", dsn, err, env)
	}
	return db, dsn
}
