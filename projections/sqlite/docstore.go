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
}

// New creates the schema if needed.
func New(db *sqlitedb.DB) (*Store, error) {
	if _, err := db.W.Exec(schema); err != nil {
		return nil, fmt.Errorf("doc store schema: %w", err)
	}
	return &Store{db: db}, nil
}

var _ projections.DocStore = (*Store)(nil)

func (s *Store) Get(ctx context.Context, coll, id string) (json.RawMessage, error) {
	var body []byte
	err := s.db.R.QueryRowContext(ctx, `SELECT json(body) FROM docs WHERE coll = ? AND id = ?`, coll, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s/%s: %w", coll, id, projections.ErrNotFound)
	}
	return body, err
}

func (s *Store) Put(ctx context.Context, coll, id string, doc json.RawMessage) error {
	_, err := s.db.W.ExecContext(ctx, `INSERT INTO docs (coll, id, body) VALUES (?, ?, jsonb(?))
		ON CONFLICT (coll, id) DO UPDATE SET body = excluded.body`, coll, id, []byte(doc))
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", coll, id, err)
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, coll, id string) error {
	_, err := s.db.W.ExecContext(ctx, `DELETE FROM docs WHERE coll = ? AND id = ?`, coll, id)
	return err
}

func (s *Store) Update(ctx context.Context, coll, id string, fn func(cur json.RawMessage) (json.RawMessage, error)) error {
	tx, err := s.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cur []byte
	err = tx.QueryRowContext(ctx, `SELECT json(body) FROM docs WHERE coll = ? AND id = ?`, coll, id).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("update %s/%s: %w", coll, id, err)
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	if next == nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO docs (coll, id, body) VALUES (?, ?, jsonb(?))
		ON CONFLICT (coll, id) DO UPDATE SET body = excluded.body`, coll, id, []byte(next)); err != nil {
		return fmt.Errorf("update %s/%s: %w", coll, id, err)
	}
	return tx.Commit()
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
		idx = append(idx, p)
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
