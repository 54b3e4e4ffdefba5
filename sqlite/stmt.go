package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// SQLite spends more time parsing a short statement than running it, and database/sql does not
// cache prepared statements. pool and txn prepare each distinct query once and reuse it.

// maxCachedStatements bounds the cache: queries built at run time (searches with filters) can
// be of endless variety, and past the bound they are prepared each time as before.
const maxCachedStatements = 512

type stmtCache struct {
	db    *sql.DB
	stmts sync.Map // query → *sql.Stmt
	n     atomic.Int64
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	if c.n.Load() >= maxCachedStatements {
		return nil, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	c.n.Add(1)
	return st, nil
}

func (c *stmtCache) close() {
	c.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
}

// pool is the read side: a connection pool whose statements are cached.
type pool struct {
	*sql.DB
	cache *stmtCache
}

func newPool(db *sql.DB) *pool { return &pool{DB: db, cache: &stmtCache{db: db}} }

func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st, err := p.cache.get(ctx, query); err == nil && st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, query, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.cache.get(ctx, query)
	if err != nil {
		return nil, err
	} else if st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, query, args...)
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.cache.get(ctx, query)
	if err != nil {
		return nil, err
	} else if st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.DB.ExecContext(ctx, query, args...)
}

// txn is a write transaction whose statements come from the writer connection's cache.
type txn struct {
	*sql.Tx
	cache *stmtCache
	// onCommit runs once the transaction has committed, before its writers hear of it; the
	// hooks of a write that failed (rolled back to its savepoint) are dropped.
	onCommit []func()
}

// A write must not be interrupted by its caller's context: modernc.org/sqlite interrupts the
// connection, and SQLite then rolls back the whole transaction, with every other write of the
// group in it. The writer checks each caller's context before running its write instead.

func (t *txn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	st, err := t.cache.get(ctx, query)
	if err != nil || st == nil {
		return nil, err
	}
	// database/sql re-prepares st on the transaction's connection once and keeps it there.
	return t.Tx.StmtContext(ctx, st), nil
}

func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	if st, err := t.stmt(ctx, query); err == nil && st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	} else if st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	} else if st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}
