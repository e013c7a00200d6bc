package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // pure Go: go run needs no C toolchain
)

// records keeps the players' records in a database, the source of truth: SQLite in a
// file, or MySQL/MariaDB. A session holds a copy of its player's record, loaded at
// login and kept up to date by the sockets, so the page reads it from the session.
type records struct {
	db      *sql.DB
	driver  string // "sqlite" or "mysql"
	table   string
	onlyNew string // the dialect's INSERT that leaves an existing row alone
}

// standing is a player's row: the record, the streaks and the nickname.
type standing struct {
	Nickname   string
	Wins       int64
	Losses     int64
	Draws      int64
	Streak     int64 // matches won in a row, up to the last one
	BestStreak int64
}

func (s standing) record() record { return record{Wins: s.Wins, Losses: s.Losses, Draws: s.Draws} }

// outcome is one player's side of a finished match.
type outcome struct {
	OpenID, Nickname string
	Result           Result
	Bot              bool // kept like a player's, off the leaderboard
}

// defaultDB is where the SQLite file goes unless -db says otherwise: the user's cache
// directory, so that go run in a checkout leaves no file in the tree.
func defaultDB() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "rps.db"
	}
	return filepath.Join(dir, "mpsession-rps", "rps.db")
}

// openRecords opens the database and creates the table if it is missing. driver is
// "sqlite", with dsn a file path, or "mysql", with dsn a go-sql-driver DSN such as
// user:pass@tcp(127.0.0.1:3306)/rps. table "" is players.
func openRecords(ctx context.Context, driver, dsn, table string) (*records, error) {
	if table == "" {
		table = "players"
	}
	r := &records{driver: driver, table: table}
	var schema []string
	switch driver {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(dsn), 0o755); err != nil {
			return nil, fmt.Errorf("records: %w", err)
		}
		// WAL lets the leaderboard read while a match is written; an immediate
		// transaction takes the write lock at BEGIN, so two matches wait for each other
		// (busy_timeout) instead of failing with SQLITE_BUSY halfway.
		q := url.Values{"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"}, "_txlock": {"immediate"}}
		dsn = "file:" + dsn + "?" + q.Encode()
		schema = []string{
			`CREATE TABLE IF NOT EXISTS ` + table + ` (
				openid      TEXT    NOT NULL PRIMARY KEY,
				nickname    TEXT    NOT NULL DEFAULT '',
				wins        INTEGER NOT NULL DEFAULT 0,
				losses      INTEGER NOT NULL DEFAULT 0,
				draws       INTEGER NOT NULL DEFAULT 0,
				streak      INTEGER NOT NULL DEFAULT 0,
				best_streak INTEGER NOT NULL DEFAULT 0,
				updated_at  INTEGER NOT NULL DEFAULT 0,
				bot         INTEGER NOT NULL DEFAULT 0
			)`,
			`CREATE INDEX IF NOT EXISTS ` + table + `_wins ON ` + table + ` (wins)`,
		}
		r.onlyNew = `INSERT INTO ` + table + ` (openid, nickname, updated_at) VALUES (?, ?, ?) ON CONFLICT (openid) DO NOTHING`
	case "mysql":
		schema = []string{
			// utf8mb4: nicknames are any Unicode, emoji included.
			"CREATE TABLE IF NOT EXISTS " + table + ` (
				openid      VARCHAR(64)  NOT NULL PRIMARY KEY,
				nickname    VARCHAR(100) NOT NULL DEFAULT '',
				wins        BIGINT       NOT NULL DEFAULT 0,
				losses      BIGINT       NOT NULL DEFAULT 0,
				draws       BIGINT       NOT NULL DEFAULT 0,
				streak      BIGINT       NOT NULL DEFAULT 0,
				best_streak BIGINT       NOT NULL DEFAULT 0,
				updated_at  BIGINT       NOT NULL DEFAULT 0,
				bot         TINYINT      NOT NULL DEFAULT 0,
				KEY ` + table + `_wins (wins)
			) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`,
		}
		r.onlyNew = "INSERT INTO " + table + " (openid, nickname, updated_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE openid = openid"
	default:
		return nil, fmt.Errorf("records: unknown driver %q", driver)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("records: %s: %w", driver, err)
	}
	db.SetMaxOpenConns(16) // a server's share of a MySQL's connections; SQLite writes one at a time anyway
	r.db = db
	for _, s := range schema {
		if _, err := db.ExecContext(ctx, s); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("records: create table %s: %w", table, err)
		}
	}
	// A table made by an earlier version has no bot column (bots' results were in their
	// sessions only): add it.
	// Another instance starting at the same moment may add it first: then the ALTER
	// fails and the column is there.
	hasBot := func() bool { _, err := db.ExecContext(ctx, "SELECT bot FROM "+table+" LIMIT 0"); return err == nil }
	if !hasBot() {
		if _, err := db.ExecContext(ctx, "ALTER TABLE "+table+" ADD COLUMN bot SMALLINT NOT NULL DEFAULT 0"); err != nil && !hasBot() {
			_ = db.Close()
			return nil, fmt.Errorf("records: add the bot column to %s: %w", table, err)
		}
	}
	return r, nil
}

func (r *records) close() error { return r.db.Close() }

// errNoRecord is get's answer for a player who has neither played nor chosen a name.
var errNoRecord = errors.New("records: no such player")

// get returns the player's standing, or errNoRecord.
func (r *records) get(ctx context.Context, openID string) (standing, error) {
	var s standing
	err := r.db.QueryRowContext(ctx, "SELECT nickname, wins, losses, draws, streak, best_streak FROM "+r.table+" WHERE openid = ?", openID).
		Scan(&s.Nickname, &s.Wins, &s.Losses, &s.Draws, &s.Streak, &s.BestStreak)
	if errors.Is(err, sql.ErrNoRows) {
		return s, errNoRecord
	}
	if err != nil {
		return s, fmt.Errorf("records: get %s: %w", openID, err)
	}
	return s, nil
}

// played adds a match to its players' records, all of them or none. The counts change
// in the database (wins = wins + 1), never read into Go and written back, so matches
// the same player finishes at the same moment all count. A player's first match
// creates their row with the nickname given. It returns each player's record as the
// match left it.
func (r *records) played(ctx context.Context, outs ...outcome) (map[string]record, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	// Rows are locked in openid order, so two matches of the same players cannot wait
	// for each other; MySQL may still pick a victim (gap locks of new rows), which is
	// tried again.
	outs = slices.Clone(outs)
	slices.SortFunc(outs, func(a, b outcome) int { return strings.Compare(a.OpenID, b.OpenID) })
	var (
		now map[string]record
		err error
	)
	for range 3 {
		if now, err = r.play(ctx, outs); !retryable(err) {
			break
		}
	}
	return now, err
}

// play writes one match and returns each player's record as the transaction left it.
func (r *records) play(ctx context.Context, outs []outcome) (map[string]record, error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("records: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().UnixMilli()
	after := make(map[string]record, len(outs))
	for _, o := range outs {
		if _, err := tx.ExecContext(ctx, r.onlyNew, o.OpenID, o.Nickname, now); err != nil {
			return nil, fmt.Errorf("records: add %s: %w", o.OpenID, err)
		}
		var w, l, d int
		switch o.Result {
		case Win:
			w = 1
		case Lose:
			l = 1
		case Draw:
			d = 1
		}
		// best_streak is set before streak: MySQL evaluates the assignments in order,
		// each seeing the ones before it, SQLite all on the old row. Written this way,
		// both read the old streak.
		_, err := tx.ExecContext(ctx, "UPDATE "+r.table+` SET wins = wins + ?, losses = losses + ?, draws = draws + ?,
			best_streak = CASE WHEN ? = 1 AND streak + 1 > best_streak THEN streak + 1 ELSE best_streak END,
			streak = CASE WHEN ? = 1 THEN streak + 1 ELSE 0 END,
			updated_at = ?, bot = ? WHERE openid = ?`, w, l, d, w, w, now, o.Bot, o.OpenID)
		if err != nil {
			return nil, fmt.Errorf("records: result of %s: %w", o.OpenID, err)
		}
		var rec record
		if err := tx.QueryRowContext(ctx, "SELECT wins, losses, draws FROM "+r.table+" WHERE openid = ?", o.OpenID).
			Scan(&rec.Wins, &rec.Losses, &rec.Draws); err != nil {
			return nil, fmt.Errorf("records: read %s: %w", o.OpenID, err)
		}
		after[o.OpenID] = rec
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("records: commit: %w", err)
	}
	return after, nil
}

// retryable reports whether MySQL rolled the transaction back to break a deadlock or a
// lock wait, so that running it again may succeed.
func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// rename sets the player's nickname, creating their row if they have none yet.
func (r *records) rename(ctx context.Context, openID, nickname string) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("records: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	now := time.Now().UnixMilli()
	if _, err := tx.ExecContext(ctx, r.onlyNew, openID, nickname, now); err != nil {
		return fmt.Errorf("records: add %s: %w", openID, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE "+r.table+" SET nickname = ?, updated_at = ? WHERE openid = ?", nickname, now, openID); err != nil {
		return fmt.Errorf("records: rename %s: %w", openID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("records: commit: %w", err)
	}
	return nil
}

// ranked is a leaderboard line. Its openid is not shown: the leaderboard is public;
// Me marks the line of the player who asks (two players may share a nickname).
type ranked struct {
	Nickname   string `json:"nickname"`
	Wins       int64  `json:"wins"`
	Losses     int64  `json:"losses"`
	Draws      int64  `json:"draws"`
	BestStreak int64  `json:"bestStreak"`
	Me         bool   `json:"me,omitempty"`
	openid     string
}

// top returns the n players with the most wins among those who have played; fewer
// losses, then the longer best streak, break a tie.
func (r *records) top(ctx context.Context, n int) ([]ranked, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT openid, nickname, wins, losses, draws, best_streak FROM "+r.table+
		" WHERE wins + losses + draws > 0 AND bot = 0 ORDER BY wins DESC, losses ASC, best_streak DESC, openid LIMIT ?", n)
	if err != nil {
		return nil, fmt.Errorf("records: top: %w", err)
	}
	defer rows.Close()
	list := []ranked{}
	for rows.Next() {
		var p ranked
		if err := rows.Scan(&p.openid, &p.Nickname, &p.Wins, &p.Losses, &p.Draws, &p.BestStreak); err != nil {
			return nil, fmt.Errorf("records: top: %w", err)
		}
		list = append(list, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: top: %w", err)
	}
	return list, nil
}
