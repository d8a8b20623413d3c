// Package sqlite is the embedded read-model store: JSON documents in one table of the shared
// SQLite file, queried with json_extract. Each distinct query shape gets an expression index the
// first time it runs, so listings never scan a whole collection.
package sqlite

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/codeset/codeset/projections"
	"github.com/codeset/codeset/shared/sqlitedb"
)

const schema = `
CREATE TABLE IF NOT EXISTS docs (
	coll TEXT NOT NULL,
	id   TEXT NOT NULL,
	body BLOB NOT NULL,
	PRIMARY KEY (coll, id)
) WITHOUT ROWID;
`

// Store implements projections.DocStore on SQLite.
type Store struct {
	db      *sqlitedb.DB
	indexed sync.Map // index name -> struct{}

	writes sqlitedb.Group[*writeReq] // group commit of concurrent writes

	// Statements of every Get, Put, Update and Delete, prepared once: parsing SQL costs more
	// than running these. The writer's are prepared when the store opens (not lazily: a
	// transaction holds the writer's only connection); the readers' on each pooled connection's
	// first use.
	get, getW, put, del *sql.Stmt
}

// New creates the schema if needed.
func New(db *sqlitedb.DB) (*Store, error) {
	if _, err := db.W.Exec(schema); err != nil {
		return nil, fmt.Errorf("doc store schema: %w", err)
	}
	s := &Store{db: db}
	s.writes = sqlitedb.Group[*writeReq]{Commit: s.commitGroup, Max: maxWriteGroup}
	var err error
	for p, q := range map[**sql.Stmt]string{&s.getW: selectBody, &s.put: upsert, &s.del: deleteDoc} {
		if *p, err = db.W.Prepare(q); err != nil {
			return nil, fmt.Errorf("doc store statements: %w", err)
		}
	}
	if s.get, err = db.R.Prepare(selectBody); err != nil {
		return nil, fmt.Errorf("doc store statements: %w", err)
	}
	return s, nil
}

const (
	selectBody = `SELECT json(body) FROM docs WHERE coll = ? AND id = ?`
	deleteDoc  = `DELETE FROM docs WHERE coll = ? AND id = ?`
)

var _ projections.DocStore = (*Store)(nil)

func (s *Store) Get(ctx context.Context, coll, id string) (json.RawMessage, error) {
	var body []byte
	err := s.get.QueryRowContext(ctx, coll, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s/%s: %w", coll, id, projections.ErrNotFound)
	}
	return body, err
}

const upsert = `INSERT INTO docs (coll, id, body) VALUES (?, ?, jsonb(?))
	ON CONFLICT (coll, id) DO UPDATE SET body = excluded.body`

func (s *Store) Put(ctx context.Context, coll, id string, doc json.RawMessage) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Stmt(s.put).Exec(coll, id, []byte(doc)); err != nil {
			return fmt.Errorf("put %s/%s: %w", coll, id, err)
		}
		return nil
	})
}

func (s *Store) Delete(ctx context.Context, coll, id string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Stmt(s.del).Exec(coll, id); err != nil {
			return fmt.Errorf("delete %s/%s: %w", coll, id, err)
		}
		return nil
	})
}

func (s *Store) Update(ctx context.Context, coll, id string, fn func(cur json.RawMessage) (json.RawMessage, error)) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var cur []byte
		err := tx.Stmt(s.getW).QueryRow(coll, id).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("update %s/%s: %w", coll, id, err)
		}
		next, err := fn(cur)
		if err != nil {
			return callerError{err}
		}
		if next == nil {
			return nil
		}
		if _, err := tx.Stmt(s.put).Exec(coll, id, []byte(next)); err != nil {
			return fmt.Errorf("update %s/%s: %w", coll, id, err)
		}
		return nil
	})
}

// callerError is an Update closure's own error: it aborts that update only, and says nothing
// about the health of the transaction it ran in.
type callerError struct{ error }

func (e callerError) Unwrap() error { return e.error }

// Writes are committed in groups (group commit): callers queue, and one goroutine runs every
// queued write in one transaction, so a durable commit (an fsync with synchronous=FULL) is
// shared by all the writes waiting for it. Each write is at most one modifying statement, which
// SQLite backs out by itself when it fails, so one write's failure leaves its neighbours alone.
// An error that is not a closure's own could mean SQLite rolled the whole transaction back: the
// group is then abandoned and each write retried in a transaction of its own.
type writeReq struct {
	ctx      context.Context
	apply    func(*sql.Tx) error
	err      error
	panicked any
}

func (s *Store) write(ctx context.Context, apply func(*sql.Tx) error) error {
	r := &writeReq{ctx: ctx, apply: apply}
	s.writes.Do(r)
	if r.panicked != nil {
		panic(r.panicked) // an Update closure's panic belongs to its caller's goroutine
	}
	return r.err
}

// maxWriteGroup bounds one group commit.
const maxWriteGroup = 512

// commitGroup runs group in one transaction; false when it must be retried one write at a time.
func (s *Store) commitGroup(group []*writeReq) bool {
	for _, r := range group {
		r.err, r.panicked = nil, nil
	}
	fail := func(err error) bool {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
		}
		return true
	}
	// Relaxed (no fsync of its own): every document is derived from the event log and written
	// before the event it applies is marked published, so a crash that loses it also loses that
	// mark, and the event is delivered and applied again; the next append's fsync makes it
	// durable anyway. This keeps the single writer free for the appends a user waits on.
	tx, done, err := s.db.BeginRelaxed(context.Background())
	if err != nil {
		return fail(fmt.Errorf("doc store: begin: %w", err))
	}
	defer done()
	defer tx.Rollback()
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		r.err = run(r, tx)
		var ce callerError
		if r.err != nil && !errors.As(r.err, &ce) && r.panicked == nil && len(group) > 1 {
			return false
		}
		if errors.As(r.err, &ce) {
			r.err = ce.error
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("doc store: commit: %w", err))
	}
	return true
}

func run(r *writeReq, tx *sql.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.panicked = p
			err = fmt.Errorf("doc store: update closure panicked")
		}
	}()
	return r.apply(tx)
}

var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func path(field string) (string, error) {
	if !fieldName.MatchString(field) {
		return "", fmt.Errorf("projections/sqlite: bad field name %q", field)
	}
	return "json_extract(body, '$." + field + "')", nil
}

func arg(v any) any {
	if b, ok := v.(bool); ok { // json_extract yields 1/0 for JSON booleans
		if b {
			return 1
		}
		return 0
	}
	return v
}

// where builds the filter clause and makes sure an index covers the query shape.
func (s *Store) where(ctx context.Context, coll string, filters []projections.Filter, orders []projections.Order) (string, []any, error) {
	clause := []string{"coll = ?"}
	args := []any{coll}
	var idx []string
	for _, f := range filters {
		p, err := path(f.Field)
		if err != nil {
			return "", nil, err
		}
		clause = append(clause, p+" = ?")
		args = append(args, arg(f.Value))
		idx = append(idx, p)
	}
	for _, o := range orders {
		p, err := path(o.Field)
		if err != nil {
			return "", nil, err
		}
		if o.Desc {
			p += " DESC"
		}
		idx = append(idx, p)
	}
	if len(orders) > 0 {
		// The index walks the rows in the query's exact order, ties by id included: SQLite then
		// sorts nothing, and an OFFSET skips index entries without reading their documents.
		idx = append(idx, "id")
	}
	if len(idx) > 0 {
		if err := s.ensureIndex(ctx, idx); err != nil {
			return "", nil, err
		}
	}
	return strings.Join(clause, " AND "), args, nil
}

func (s *Store) ensureIndex(ctx context.Context, exprs []string) error {
	def := "coll, " + strings.Join(exprs, ", ")
	sum := sha1.Sum([]byte(def))
	name := "docs_q_" + hex.EncodeToString(sum[:6])
	if _, ok := s.indexed.Load(name); ok {
		return nil
	}
	if _, err := s.db.W.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS `+name+` ON docs (`+def+`)`); err != nil {
		return fmt.Errorf("index %s: %w", def, err)
	}
	s.indexed.Store(name, struct{}{})
	return nil
}

func (s *Store) Query(ctx context.Context, coll string, q projections.Query) (projections.Page, error) {
	w, args, err := s.where(ctx, coll, q.Where, q.OrderBy)
	if err != nil {
		return projections.Page{}, err
	}
	order := make([]string, 0, len(q.OrderBy)+1)
	for _, o := range q.OrderBy {
		p, _ := path(o.Field)
		if o.Desc {
			p += " DESC"
		}
		order = append(order, p)
	}
	order = append(order, "id")
	offset, err := decodeCursor(q.Cursor)
	if err != nil {
		return projections.Page{}, err
	}
	offset += max(q.Offset, 0)
	limit := -1
	if q.Limit > 0 {
		limit = q.Limit + 1 // one more tells whether there is a next page
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT json(body) FROM docs WHERE `+w+` ORDER BY `+strings.Join(order, ", ")+` LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	if err != nil {
		return projections.Page{}, fmt.Errorf("query %s: %w", coll, err)
	}
	defer rows.Close()
	var page projections.Page
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return projections.Page{}, err
		}
		page.Docs = append(page.Docs, body)
	}
	if q.Limit > 0 && len(page.Docs) > q.Limit {
		page.Docs = page.Docs[:q.Limit]
		page.NextCursor = encodeCursor(offset + q.Limit)
	}
	return page, rows.Err()
}

func (s *Store) Count(ctx context.Context, coll string, filters ...projections.Filter) (int, error) {
	w, args, err := s.where(ctx, coll, filters, nil)
	if err != nil {
		return 0, err
	}
	var n int
	err = s.db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM docs WHERE `+w, args...).Scan(&n)
	return n, err
}

func encodeCursor(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(offset)))
}

func decodeCursor(c string) (int, error) {
	if c == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && strings.HasPrefix(string(raw), "o:") {
		if n, err := strconv.Atoi(string(raw[2:])); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, fmt.Errorf("bad cursor %q: %w", c, projections.ErrBadCursor)
}
