// Package sqlite is the embedded event store: one table of events in the shared SQLite file,
// unique on (stream, version) and on id, with a partial index over the unpublished ones (the
// outbox).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/sqlitedb"
)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	id             TEXT    NOT NULL UNIQUE,
	stream         TEXT    NOT NULL,
	version        INTEGER NOT NULL,
	type           TEXT    NOT NULL,
	schema_version INTEGER NOT NULL,
	occurred_at    INTEGER NOT NULL, -- unix microseconds, UTC
	user_id        TEXT    NOT NULL,
	data           BLOB    NOT NULL,
	published      INTEGER NOT NULL DEFAULT 0,
	UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS events_unpublished ON events (seq) WHERE published = 0;
`

// Store implements events.Store on SQLite.
type Store struct{ db *sqlitedb.DB }

// New creates the schema if needed.
func New(db *sqlitedb.DB) (*Store, error) {
	if _, err := db.W.Exec(schema); err != nil {
		return nil, fmt.Errorf("event store schema: %w", err)
	}
	return &Store{db: db}, nil
}

var _ events.Store = (*Store)(nil)

const cols = `id, stream, version, type, schema_version, occurred_at, user_id, data`

func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) ([]events.Envelope, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	if stored, done, err := existing(ctx, tx, stream, evs); done || err != nil {
		return stored, err
	}
	var cur int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?`, stream).Scan(&cur); err != nil {
		return nil, err
	}
	if expected != events.Any && cur != expected {
		return nil, fmt.Errorf("%s at %d, expected %d: %w", stream, cur, expected, events.ErrConcurrency)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	out := make([]events.Envelope, len(evs))
	for i, e := range evs {
		e.Stream = stream
		e.Version = cur + int64(i) + 1
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
		if _, err := stmt.ExecContext(ctx, e.ID, e.Stream, e.Version, e.Type, e.SchemaVersion, e.OccurredAt.UnixMicro(), e.UserID, []byte(e.Data)); err != nil {
			return nil, fmt.Errorf("insert %s@%d: %w", stream, e.Version, err)
		}
		out[i] = e
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// existing tells an idempotent retry (every event already stored with the same content: done,
// with what was stored) from a conflicting reuse of an id (ErrIDConflict) and from new events
// (not done).
func existing(ctx context.Context, tx *sql.Tx, stream string, evs []events.Envelope) ([]events.Envelope, bool, error) {
	var stored []events.Envelope
	for _, e := range evs {
		row := tx.QueryRowContext(ctx, `SELECT `+cols+` FROM events WHERE id = ?`, e.ID)
		got, err := scan(row)
		if errors.Is(err, sql.ErrNoRows) {
			if len(stored) > 0 {
				return nil, true, fmt.Errorf("%s: event %s stored but %s not: %w", stream, stored[0].ID, e.ID, events.ErrIDConflict)
			}
			return nil, false, nil
		}
		if err != nil {
			return nil, true, err
		}
		want := e
		want.Stream = stream
		if want.SchemaVersion == 0 {
			want.SchemaVersion = 1
		}
		want.OccurredAt = want.OccurredAt.UTC().Truncate(time.Microsecond)
		if !got.SameContent(want) {
			return nil, true, fmt.Errorf("%s: event %s: %w", stream, e.ID, events.ErrIDConflict)
		}
		stored = append(stored, got)
	}
	return stored, true, nil
}

type scanner interface{ Scan(...any) error }

func scan(r scanner) (events.Envelope, error) {
	var e events.Envelope
	var at int64
	var data []byte
	if err := r.Scan(&e.ID, &e.Stream, &e.Version, &e.Type, &e.SchemaVersion, &at, &e.UserID, &data); err != nil {
		return e, err
	}
	e.OccurredAt = time.UnixMicro(at).UTC()
	e.Data = data
	return e, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]events.Envelope, error) {
	rows, err := s.db.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []events.Envelope
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, err
		}
		if e, err = events.Upcast(e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) Load(ctx context.Context, stream string, from int64) ([]events.Envelope, error) {
	evs, err := s.query(ctx, `SELECT `+cols+` FROM events WHERE stream = ? AND version >= ? ORDER BY version`, stream, from)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	return evs, nil
}

func (s *Store) Version(ctx context.Context, stream string) (int64, error) {
	var v int64
	err := s.db.R.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?`, stream).Scan(&v)
	return v, err
}

func (s *Store) Unpublished(ctx context.Context, limit int) ([]events.Envelope, error) {
	return s.query(ctx, `SELECT `+cols+` FROM events WHERE published = 0 ORDER BY seq LIMIT ?`, limit)
}

func (s *Store) MarkPublished(ctx context.Context, evs ...events.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, e := range evs {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET published = 1 WHERE stream = ? AND version = ? AND published = 0`, e.Stream, e.Version); err != nil {
			return fmt.Errorf("mark published %s@%d: %w", e.Stream, e.Version, err)
		}
	}
	return tx.Commit()
}

func (s *Store) Scan(ctx context.Context, prefix string, fn func(events.Envelope) error) error {
	// Pages by seq so that a long scan never holds one read transaction open.
	var after int64
	for {
		rows, err := s.db.R.QueryContext(ctx, `SELECT seq, `+cols+` FROM events WHERE seq > ? AND substr(stream, 1, ?) = ? ORDER BY seq LIMIT 5000`, after, len(prefix), prefix)
		if err != nil {
			return fmt.Errorf("scan %q: %w", prefix, err)
		}
		var batch []events.Envelope
		for rows.Next() {
			var e events.Envelope
			var at int64
			var data []byte
			if err := rows.Scan(&after, &e.ID, &e.Stream, &e.Version, &e.Type, &e.SchemaVersion, &at, &e.UserID, &data); err != nil {
				rows.Close()
				return err
			}
			e.OccurredAt = time.UnixMicro(at).UTC()
			e.Data = data
			batch = append(batch, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range batch {
			e, err := events.Upcast(e)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(batch) < 5000 {
			return nil
		}
	}
}
