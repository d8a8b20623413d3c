// Package sqlite is the embedded event store: one table of events in the shared SQLite file,
// unique on (stream, version) and on id, with a partial index over the unpublished ones (the
// outbox).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/codeset/codeset/events"
	"github.com/codeset/codeset/shared/sqlitedb"
)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq            INTEGER PRIMARY KEY, -- the rowid: commit order (rows are never deleted)
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
type Store struct {
	db *sqlitedb.DB

	appends sqlitedb.Group[*appendReq] // group commit of concurrent appends

	// Statements prepared once on the writer when the store opens (not lazily: a transaction
	// holds the writer's only connection). Parsing SQL costs more than running these.
	head, byID, mark               *sql.Stmt
	savepoint, rollbackTo, release *sql.Stmt
	inserts                        map[int]*sql.Stmt // rows per INSERT -> statement
	// Reads on the reader pool, prepared on each pooled connection's first use.
	load, version, unpublished *sql.Stmt
}

// insertSizes are the multi-row INSERTs prepared: a batch is written greedily in these sizes.
var insertSizes = []int{100, 64, 32, 16, 8, 4, 2, 1}

// insertPlan splits n rows into prepared INSERT sizes, largest first.
func insertPlan(n int) []int {
	var plan []int
	for n > 0 {
		for _, size := range insertSizes {
			if size <= n {
				plan = append(plan, size)
				n -= size
				break
			}
		}
	}
	return plan
}

func (s *Store) prepare() error {
	var err error
	if s.head, err = s.db.W.Prepare(`SELECT COALESCE((SELECT MAX(version) FROM events WHERE stream = ?), 0), EXISTS (SELECT 1 FROM events WHERE id = ?)`); err != nil {
		return err
	}
	if s.byID, err = s.db.W.Prepare(`SELECT ` + cols + ` FROM events WHERE id = ?`); err != nil {
		return err
	}
	if s.mark, err = s.db.W.Prepare(`UPDATE events SET published = 1 WHERE stream = ? AND version = ? AND published = 0`); err != nil {
		return err
	}
	for p, q := range map[**sql.Stmt]string{&s.savepoint: `SAVEPOINT one_append`, &s.rollbackTo: `ROLLBACK TO one_append`, &s.release: `RELEASE one_append`} {
		if *p, err = s.db.W.Prepare(q); err != nil {
			return err
		}
	}
	for p, q := range map[**sql.Stmt]string{
		&s.load:        `SELECT ` + cols + ` FROM events WHERE stream = ? AND version >= ? ORDER BY version`,
		&s.version:     `SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?`,
		&s.unpublished: `SELECT ` + cols + ` FROM events WHERE published = 0 ORDER BY seq LIMIT ?`,
	} {
		if *p, err = s.db.R.Prepare(q); err != nil {
			return err
		}
	}
	s.inserts = map[int]*sql.Stmt{}
	for _, n := range insertSizes {
		q := `INSERT INTO events (` + cols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)` + strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?, ?)`, n-1)
		if s.inserts[n], err = s.db.W.Prepare(q); err != nil {
			return err
		}
	}
	return nil
}

// New creates the schema if needed.
func New(db *sqlitedb.DB) (*Store, error) {
	if _, err := db.W.Exec(schema); err != nil {
		return nil, fmt.Errorf("event store schema: %w", err)
	}
	s := &Store{db: db}
	s.appends = sqlitedb.Group[*appendReq]{Commit: s.commitGroup, Max: maxGroup,
		Weight: func(r *appendReq) int { return len(r.evs) }}
	if err := s.prepare(); err != nil {
		return nil, fmt.Errorf("event store statements: %w", err)
	}
	return s, nil
}

var _ events.Store = (*Store)(nil)

const cols = `id, stream, version, type, schema_version, occurred_at, user_id, data`

// Append commits concurrent appends together (group commit): callers queue, and one goroutine
// writes everything queued in one transaction, so a durable commit (an fsync with
// synchronous=FULL) is shared by every append waiting for it. Each append runs in its own
// savepoint with its own checks, so one append's ErrConcurrency or ErrIDConflict never fails the
// others of its group.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...events.Envelope) ([]events.Envelope, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	r := &appendReq{ctx: ctx, stream: stream, expected: expected, evs: evs}
	s.appends.Do(r)
	return r.out, r.err
}

type appendReq struct {
	ctx      context.Context
	stream   string
	expected int64
	evs      []events.Envelope
	out      []events.Envelope
	err      error
}

// maxGroup bounds the events of one group commit, so that a burst does not make one
// transaction (and the wait of its first caller) arbitrarily long.
const maxGroup = 4096

// commitGroup runs group in one transaction; false when it must be retried one append at a time.
func (s *Store) commitGroup(group []*appendReq) bool {
	for _, r := range group {
		r.out, r.err = nil, nil
	}
	fail := func(err error) bool {
		if len(group) > 1 {
			return false
		}
		for _, r := range group {
			if r.err == nil {
				r.out, r.err = nil, err
			}
		}
		return true
	}
	// The group outlives any one caller's context: a cancelled caller is skipped below.
	ctx := context.Background()
	tx, done, err := s.begin(ctx, group)
	if err != nil {
		return fail(fmt.Errorf("append: begin: %w", err))
	}
	defer done()
	defer tx.Rollback()
	wrote := false
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = fmt.Errorf("append %s: %w", r.stream, err)
			continue
		}
		// A savepoint undoes a failed append without touching its neighbours. An append written by
		// one INSERT needs none: SQLite already backs out a failed statement, and the checks
		// before it write nothing.
		guard := len(group) > 1 && len(insertPlan(len(r.evs))) > 1
		if guard {
			if _, err := tx.StmtContext(ctx, s.savepoint).ExecContext(ctx); err != nil {
				return fail(fmt.Errorf("append: savepoint: %w", err))
			}
		}
		r.out, r.err = s.appendTx(ctx, tx, r.stream, r.expected, r.evs)
		if r.err == nil {
			wrote = true
		} else if len(group) > 1 && !errors.Is(r.err, events.ErrConcurrency) && !errors.Is(r.err, events.ErrIDConflict) {
			return false
		}
		if !guard {
			continue
		}
		if r.err != nil {
			if _, err := tx.StmtContext(ctx, s.rollbackTo).ExecContext(ctx); err != nil {
				return fail(fmt.Errorf("append: rollback to savepoint: %w", err))
			}
		}
		if _, err := tx.StmtContext(ctx, s.release).ExecContext(ctx); err != nil {
			return fail(fmt.Errorf("append: release savepoint: %w", err))
		}
	}
	if !wrote {
		return true // only failures and retries: nothing to make durable
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("append: commit: %w", err))
	}
	return true
}

// begin starts the group's transaction: durable (synchronous=FULL), unless every append of the
// group waived its own flush (events.WithoutSync).
func (s *Store) begin(ctx context.Context, group []*appendReq) (*sql.Tx, func(), error) {
	for _, r := range group {
		if !events.SyncWaived(r.ctx) {
			tx, err := s.db.W.BeginTx(ctx, nil)
			return tx, func() {}, err
		}
	}
	return s.db.BeginRelaxed(ctx)
}

// appendTx checks and writes one append inside the group's transaction.
func (s *Store) appendTx(ctx context.Context, tx *sql.Tx, stream string, expected int64, evs []events.Envelope) ([]events.Envelope, error) {
	// One statement answers the common case (new events): the head, and that the first id is free.
	var cur int64
	var seen bool
	if err := tx.StmtContext(ctx, s.head).QueryRowContext(ctx, stream, evs[0].ID).Scan(&cur, &seen); err != nil {
		return nil, fmt.Errorf("version of %s: %w", stream, err)
	}
	if seen {
		if stored, done, err := s.existing(ctx, tx, stream, evs); done || err != nil {
			return stored, err
		}
	}
	if expected != events.Any && cur != expected {
		return nil, fmt.Errorf("%s at %d, expected %d: %w", stream, cur, expected, events.ErrConcurrency)
	}
	out := make([]events.Envelope, len(evs))
	// Multi-row INSERTs of prepared sizes: far fewer trips through the driver than a row at a time.
	args := make([]any, 0, 8*insertSizes[0])
	lo := 0
	for _, n := range insertPlan(len(evs)) {
		args = args[:0]
		for i := lo; i < lo+n; i++ {
			e := evs[i]
			e.Stream = stream
			e.Version = cur + int64(i) + 1
			if e.SchemaVersion == 0 {
				e.SchemaVersion = 1
			}
			e.OccurredAt = e.OccurredAt.UTC().Truncate(time.Microsecond)
			args = append(args, e.ID, e.Stream, e.Version, e.Type, e.SchemaVersion, e.OccurredAt.UnixMicro(), e.UserID, []byte(e.Data))
			out[i] = e
		}
		if _, err := tx.StmtContext(ctx, s.inserts[n]).ExecContext(ctx, args...); err != nil {
			if id, ok := takenID(ctx, tx, evs[lo:lo+n]); ok {
				return nil, fmt.Errorf("%s: event %s is already stored elsewhere: %w", stream, id, events.ErrIDConflict)
			}
			return nil, fmt.Errorf("insert into %s at %d: %w", stream, cur+int64(lo)+1, err)
		}
		lo += n
	}
	return out, nil
}

// takenID finds an event of evs whose id is already stored (in another stream or at another
// position): the reason an insert that passed the version check failed.
func takenID(ctx context.Context, tx *sql.Tx, evs []events.Envelope) (string, bool) {
	for _, e := range evs {
		var one int
		if tx.QueryRowContext(ctx, `SELECT 1 FROM events WHERE id = ?`, e.ID).Scan(&one) == nil {
			return e.ID, true
		}
	}
	return "", false
}

// existing tells an idempotent retry (every event already stored with the same content: done,
// with what was stored) from a conflicting reuse of an id (ErrIDConflict) and from new events
// (not done).
func (s *Store) existing(ctx context.Context, tx *sql.Tx, stream string, evs []events.Envelope) ([]events.Envelope, bool, error) {
	byID := tx.StmtContext(ctx, s.byID)
	var stored []events.Envelope
	for _, e := range evs {
		row := byID.QueryRowContext(ctx, e.ID)
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

func (s *Store) query(ctx context.Context, q *sql.Stmt, args ...any) ([]events.Envelope, error) {
	rows, err := q.QueryContext(ctx, args...)
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
	evs, err := s.query(ctx, s.load, stream, from)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", stream, err)
	}
	return evs, nil
}

func (s *Store) Version(ctx context.Context, stream string) (int64, error) {
	var v int64
	err := s.version.QueryRowContext(ctx, stream).Scan(&v)
	return v, err
}

func (s *Store) Unpublished(ctx context.Context, limit int) ([]events.Envelope, error) {
	return s.query(ctx, s.unpublished, limit)
}

func (s *Store) MarkPublished(ctx context.Context, evs ...events.Envelope) error {
	if len(evs) == 0 {
		return nil
	}
	// Relaxed: a mark lost in a crash only means the event is delivered again, which consumers
	// absorb; the next append's fsync makes it durable anyway.
	tx, done, err := s.db.BeginRelaxed(ctx)
	if err != nil {
		return err
	}
	defer done()
	defer tx.Rollback()
	mark := tx.StmtContext(ctx, s.mark)
	for _, e := range evs {
		if _, err := mark.ExecContext(ctx, e.Stream, e.Version); err != nil {
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
