// Package sqlite is the embedded metadata store: SQLite in WAL mode through modernc.org/sqlite
// (no cgo). Metric series are stored as compressed chunks (package series), one row per batch
// and name, not one row per point.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atelier-ml/atelier"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ atelier.Store = (*DB)(nil)

// DB is the SQLite store. Reads go through a pool of connections; writes go through one
// connection owned by a goroutine that commits concurrent writes together (group commit), so
// many small writers share one transaction and one WAL append.
type DB struct {
	path  string
	read  *pool
	write *sql.DB
	// writeStmts caches the statements prepared on the writer's one connection.
	writeStmts *stmtCache

	// Now and NewID are the domain's clock and ids (the server sets them from its Config; tests
	// pin them).
	Now   atelier.Clock
	NewID atelier.IDs

	writes chan *writeReq
	closed chan struct{}
	wg     sync.WaitGroup

	closeOnce atomic.Bool
	// series caches decoded metric series (see seriescache.go).
	series *seriesCache
	// runWorkspace caches run id → workspace id; it never changes once a run exists.
	runWorkspace sync.Map
	// workspaces caches workspace name → id for reads: nearly every call resolves a workspace
	// first, and the query also began a read transaction of its own.
	workspaces workspaceCache
	// planLimit is the number of runs under which a search reads them all (query.go):
	// driverLimit, lowered by tests to exercise every plan on a small fixture.
	planLimit int
}

// workspaceCache maps the names of committed workspaces to their ids. A deletion bumps gen
// once it is committed, so a lookup that read the database before that cannot store what it
// found afterwards.
type workspaceCache struct {
	mu  sync.Mutex
	ids map[string]int64
	gen uint64
}

func (c *workspaceCache) get(name string) (id int64, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok = c.ids[name]
	return id, c.gen, ok
}

func (c *workspaceCache) put(name string, id int64, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.ids == nil {
		c.ids = map[string]int64{}
	}
	c.ids[name] = id
}

func (c *workspaceCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.ids, name)
}

type writeReq struct {
	ctx  context.Context
	fn   func(tx *txn) error
	done chan error
}

// Options tune the store.
type Options struct {
	// Synchronous is SQLite's synchronous pragma. NORMAL (the default) keeps every committed
	// transaction across a crash of the process (kill -9); FULL also across a power loss.
	Synchronous string
	// SeriesCacheBytes bounds the memory of decoded metric series kept for re-reads
	// (default 256 MiB).
	SeriesCacheBytes int64
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	if opt.Synchronous == "" {
		opt.Synchronous = "NORMAL"
	}
	if opt.SeriesCacheBytes <= 0 {
		opt.SeriesCacheBytes = 256 << 20
	}
	switch strings.ToUpper(opt.Synchronous) {
	case "OFF", "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite: unknown synchronous mode %q", opt.Synchronous)
	}
	pragmas := []string{"busy_timeout(10000)", "foreign_keys(1)", "journal_mode(WAL)",
		"synchronous(" + opt.Synchronous + ")", "cache_size(-65536)", "temp_store(memory)", "mmap_size(268435456)"}
	q := url.Values{"_pragma": pragmas, "_txlock": {"immediate"}}
	dsn := "file:" + path + "?" + q.Encode()

	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// Only the writer goroutine begins transactions on write, so writes stay serial; the second
	// connection lets the statement cache prepare a statement while the first is in a
	// transaction (database/sql prepares a DB-level statement on some free connection first).
	write.SetMaxOpenConns(2)
	write.SetMaxIdleConns(2)
	write.SetConnMaxIdleTime(0)
	readDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		write.Close()
		return nil, err
	}
	readDB.SetMaxOpenConns(max(4, 2*runtime.NumCPU()))
	readDB.SetMaxIdleConns(max(4, 2*runtime.NumCPU()))

	db := &DB{path: path, read: newPool(readDB), write: write, writeStmts: &stmtCache{db: write}, Now: time.Now, NewID: atelier.NewID,
		series: newSeriesCache(opt.SeriesCacheBytes), planLimit: driverLimit,
		writes: make(chan *writeReq, 1024), closed: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		db.read.Close()
		db.write.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	db.wg.Add(1)
	go db.writer()
	return db, nil
}

// Close stops the writer and closes the database.
func (db *DB) Close() error {
	if !db.closeOnce.CompareAndSwap(false, true) {
		return nil
	}
	close(db.closed)
	db.wg.Wait()
	// A passive checkpoint keeps the WAL short for the next start.
	db.read.cache.close()
	db.writeStmts.close()
	db.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(db.read.Close(), db.write.Close())
}

// now is the store's clock at the precision it stores (milliseconds), so what a write returns
// equals what a later read returns.
func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Millisecond) }

// maxGroup bounds how many writes share one transaction, so one commit never waits too long.
const maxGroup = 256

// update runs fn in a write transaction. Concurrent updates are grouped into one transaction;
// each runs inside its own savepoint, so one failing rolls back only itself.
func (db *DB) update(ctx context.Context, fn func(tx *txn) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case db.writes <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.closed:
		return atelier.Errorf(atelier.EUNAVAILABLE, "the server is shutting down")
	}
	return storageFull(<-req.done)
}

// storageFull names a write refused for lack of space as ENOSPACE: SQLite's SQLITE_FULL (it
// says so for ENOSPC), and the system's ENOSPC and EDQUOT wrapped in other errors.
func storageFull(err error) error {
	if isFull(err) && atelier.ErrorCode(err) == atelier.EINTERNAL {
		return atelier.StorageFullError(err)
	}
	return atelier.StorageFull(err)
}

// isFull reports whether err is SQLite's SQLITE_FULL.
func isFull(err error) bool {
	var e *sqlitedrv.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_FULL
}

func (db *DB) writer() {
	defer db.wg.Done()
	group := make([]*writeReq, 0, maxGroup)
	for {
		select {
		case <-db.closed:
			// Drain what was queued so no caller waits forever.
			for {
				select {
				case req := <-db.writes:
					req.done <- atelier.Errorf(atelier.EUNAVAILABLE, "the server is shutting down")
				default:
					return
				}
			}
		case req := <-db.writes:
			group = append(group[:0], req)
		fill:
			for len(group) < maxGroup {
				select {
				case req := <-db.writes:
					group = append(group, req)
				default:
					break fill
				}
			}
			db.commitGroup(group)
		}
	}
}

func (db *DB) commitGroup(group []*writeReq) {
	errs := make([]error, len(group))
	// The audit entries of the requests whose writes these are, written in this transaction
	// (atelier.PendingAudit): released once it has committed or failed.
	var audits []auditClaim
	sqlTx, err := db.write.Begin()
	tx := &txn{Tx: sqlTx, cache: db.writeStmts}
	if err != nil {
		for _, req := range group {
			req.done <- err
		}
		return
	}
	// Respond only after releasing the audit claims, so a request sees its entry stored; err
	// is the transaction's (it stored nothing, audits included).
	respond := func(err error) {
		for _, c := range audits {
			if err != nil {
				c.id = 0
			}
			c.p.Release(c.id)
		}
		for i, req := range group {
			if err != nil {
				req.done <- err
			} else {
				req.done <- errs[i]
			}
		}
	}
	for i, req := range group {
		if err := req.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if len(group) == 1 {
			if errs[i] = req.fn(tx); errs[i] == nil {
				audits = db.storeAudit(req.ctx, tx, audits)
			}
			continue
		}
		if _, err := tx.Exec("SAVEPOINT w"); err != nil {
			errs[i] = err
			continue
		}
		hooks, claims := len(tx.onCommit), len(audits)
		if errs[i] = req.fn(tx); isFull(errs[i]) {
			// SQLite may have rolled back the whole transaction, not only the savepoint, and
			// what the group wrote before would not fit either: none of it is stored.
			tx.Rollback()
			respond(errs[i])
			return
		} else if errs[i] != nil {
			tx.onCommit = tx.onCommit[:hooks]
			if _, err := tx.Exec("ROLLBACK TO w"); err != nil {
				errs[i] = errors.Join(errs[i], err)
			}
		} else {
			audits = db.storeAudit(req.ctx, tx, audits)
		}
		if _, err := tx.Exec("RELEASE w"); err != nil && errs[i] == nil {
			errs[i] = err
			for j := claims; j < len(audits); j++ {
				audits[j].id = 0 // not known to be in the transaction: let the request record it
			}
		}
	}
	if len(group) == 1 && errs[0] != nil {
		tx.Rollback()
		respond(errs[0])
		return
	}
	if err := tx.Commit(); err != nil {
		respond(err)
		return
	}
	for _, f := range tx.onCommit {
		f()
	}
	respond(nil)
}

// auditClaim is a request's audit entry written in a group's transaction under id.
type auditClaim struct {
	p  *atelier.PendingAudit
	id int64
}

// storeAudit writes the audit entry of ctx's request in tx if no earlier write took it.
func (db *DB) storeAudit(ctx context.Context, tx *txn, claims []auditClaim) []auditClaim {
	p := atelier.AuditFromContext(ctx)
	if p == nil {
		return claims
	}
	e, ok := p.Claim()
	if !ok {
		return claims
	}
	if e.Time.IsZero() {
		e.Time = db.now()
	}
	id, err := insertAudit(ctx, tx, &e)
	if err != nil {
		// The write stands; the request records its entry itself.
		p.Release(0)
		return claims
	}
	return append(claims, auditClaim{p, id})
}

// workspaceID resolves a workspace name. Reads use the cache; writes ask their transaction,
// which sees what the transaction itself changed.
func (db *DB) workspaceID(ctx context.Context, q querier, name string) (int64, error) {
	_, inTx := q.(*txn)
	id, gen, ok := db.workspaces.get(name)
	if ok && !inTx {
		return id, nil
	}
	err := q.QueryRowContext(ctx, `SELECT id FROM workspaces WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, atelier.Errorf(atelier.ENOTFOUND, "workspace %q not found", name)
	} else if err != nil {
		return 0, err
	}
	if !inTx {
		db.workspaces.put(name, id, gen)
	}
	return id, nil
}

// checkRun verifies that run id exists in the workspace and returns the workspace id.
func (db *DB) checkRun(ctx context.Context, q querier, workspace, id string) (int64, error) {
	wsID, err := db.workspaceID(ctx, q, workspace)
	if err != nil {
		return 0, err
	}
	if v, ok := db.runWorkspace.Load(id); ok {
		if v.(int64) == wsID {
			return wsID, nil
		}
		return 0, runNotFound(id)
	}
	var runWS int64
	err = q.QueryRowContext(ctx, `SELECT workspace_id FROM runs WHERE id = ?`, id).Scan(&runWS)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && runWS != wsID) {
		return 0, runNotFound(id)
	} else if err != nil {
		return 0, err
	}
	db.runWorkspace.Store(id, runWS)
	return wsID, nil
}

func runNotFound(id string) error { return atelier.Errorf(atelier.ENOTFOUND, "run %q not found", id) }

// querier is what reads need: a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}
