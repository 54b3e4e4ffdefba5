package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/atelier-ml/atelier"
)

// PutFile records a stored file under a run, replacing a file at the same path.
func (db *DB) PutFile(ctx context.Context, workspace, runID string, f *atelier.File) error {
	if err := atelier.ValidatePath(f.Path); err != nil {
		return err
	}
	f.CreatedAt = db.now()
	return db.update(ctx, func(tx *txn) error {
		if _, err := db.checkRun(ctx, tx, workspace, runID); err != nil {
			return err
		}
		if err := db.pathFree(ctx, tx, runID, f.Path, "logs"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO files (run_id, path, digest, size, created_at) VALUES (?, ?, ?, ?, ?)`,
			runID, f.Path, f.Digest, f.Size, ms(f.CreatedAt))
		return err
	})
}

// pathFree refuses a path already used by the other kind of file (a log or a stored file).
func (db *DB) pathFree(ctx context.Context, tx *txn, runID, path, otherTable string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+otherTable+` WHERE run_id = ? AND path = ?`, runID, path).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		if otherTable == "logs" {
			return atelier.Errorf(atelier.ECONFLICT, "%s is a log of run %s: append to it instead", path, runID)
		}
		return atelier.Errorf(atelier.ECONFLICT, "%s is a file of run %s, not a log", path, runID)
	}
	return nil
}

// FindFile returns a run's file or log by path.
func (db *DB) FindFile(ctx context.Context, workspace, runID, path string) (*atelier.File, error) {
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	f := &atelier.File{Path: path}
	var created int64
	err := db.read.QueryRowContext(ctx, `SELECT digest, size, created_at FROM files WHERE run_id = ? AND path = ?`, runID, path).
		Scan(&f.Digest, &f.Size, &created)
	if errors.Is(err, sql.ErrNoRows) {
		err = db.read.QueryRowContext(ctx, `SELECT size, created_at FROM logs WHERE run_id = ? AND path = ?`, runID, path).Scan(&f.Size, &created)
		f.Log = true
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "run %s has no file %q", runID, path)
	} else if err != nil {
		return nil, err
	}
	f.CreatedAt = fromMS(created)
	return f, nil
}

// ListFiles lists a run's files and logs under prefix (a directory path or "").
func (db *DB) ListFiles(ctx context.Context, workspace, runID, prefix string) ([]*atelier.File, error) {
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	prefix = strings.Trim(prefix, "/")
	pattern := "*"
	if prefix != "" {
		pattern = globEscape(prefix) + "/*"
	}
	rows, err := db.read.QueryContext(ctx, `SELECT path, digest, size, created_at, 0 FROM files WHERE run_id = ? AND (path GLOB ? OR path = ?)
		UNION ALL SELECT path, '', size, created_at, 1 FROM logs WHERE run_id = ? AND (path GLOB ? OR path = ?)`,
		runID, pattern, prefix, runID, pattern, prefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.File{}
	for rows.Next() {
		var f atelier.File
		var created int64
		if err := rows.Scan(&f.Path, &f.Digest, &f.Size, &created, &f.Log); err != nil {
			return nil, err
		}
		f.CreatedAt = fromMS(created)
		list = append(list, &f)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	return list, rows.Err()
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '*' || r == '?' || r == '[' || r == ']' {
			b.WriteByte('[')
			b.WriteRune(r)
			b.WriteByte(']')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// AppendLog appends to a log file; each append is one row, read back in offset order.
func (db *DB) AppendLog(ctx context.Context, workspace, runID, path string, data []byte) (int64, error) {
	if err := atelier.ValidatePath(path); err != nil {
		return 0, err
	}
	var size int64
	err := db.update(ctx, func(tx *txn) error {
		if _, err := db.checkRun(ctx, tx, workspace, runID); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `SELECT size FROM logs WHERE run_id = ? AND path = ?`, runID, path).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			if err := db.pathFree(ctx, tx, runID, path, "files"); err != nil {
				return err
			}
			size = 0
			if _, err := tx.ExecContext(ctx, `INSERT INTO logs (run_id, path, size, created_at) VALUES (?, ?, 0, ?)`, runID, path, ms(db.now())); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if len(data) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO log_chunks (run_id, path, offset, data) VALUES (?, ?, ?, ?)`, runID, path, size, data); err != nil {
			return err
		}
		size += int64(len(data))
		_, err = tx.ExecContext(ctx, `UPDATE logs SET size = ? WHERE run_id = ? AND path = ?`, size, runID, path)
		return err
	})
	return size, err
}

// ReadLog reads a log from offset, at most limit bytes (all when limit <= 0).
func (db *DB) ReadLog(ctx context.Context, workspace, runID, path string, offset, limit int64) (*atelier.LogChunk, error) {
	if _, err := db.checkRun(ctx, db.read, workspace, runID); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, atelier.Errorf(atelier.EINVALID, "negative log offset %d", offset)
	}
	var status atelier.RunStatus
	if err := db.read.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, runID).Scan(&status); err != nil {
		return nil, err
	}
	var size int64
	err := db.read.QueryRowContext(ctx, `SELECT size FROM logs WHERE run_id = ? AND path = ?`, runID, path).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		// A log that nothing was written to yet reads as empty while the run is live.
		if status.Terminal() {
			return nil, atelier.Errorf(atelier.ENOTFOUND, "run %s has no log %q", runID, path)
		}
		return &atelier.LogChunk{Offset: offset}, nil
	} else if err != nil {
		return nil, err
	}
	chunk := &atelier.LogChunk{Offset: min(offset, size), Done: status.Terminal()}
	// The chunk containing offset starts at the largest chunk offset <= offset.
	rows, err := db.read.QueryContext(ctx, `SELECT offset, data FROM log_chunks WHERE run_id = ? AND path = ?
		AND offset >= coalesce((SELECT max(offset) FROM log_chunks WHERE run_id = ? AND path = ? AND offset <= ?), 0) ORDER BY offset`,
		runID, path, runID, path, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return nil, err
		}
		if off < offset {
			data = data[min(offset-off, int64(len(data))):]
		}
		chunk.Data = append(chunk.Data, data...)
		if limit > 0 && int64(len(chunk.Data)) >= limit {
			chunk.Data = chunk.Data[:limit]
			chunk.Done = false
			break
		}
	}
	return chunk, rows.Err()
}

// PutSnapshot records a snapshot manifest; the same manifest twice is one snapshot.
func (db *DB) PutSnapshot(ctx context.Context, s *atelier.Snapshot) error {
	entries, err := json.Marshal(s.Entries)
	if err != nil {
		return err
	}
	s.CreatedAt = db.now()
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, s.Workspace)
		if err != nil {
			return err
		}
		var created int64
		err = tx.QueryRowContext(ctx, `SELECT created_at FROM snapshots WHERE workspace_id = ? AND id = ?`, wsID, s.ID).Scan(&created)
		if err == nil {
			s.CreatedAt = fromMS(created)
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO snapshots (workspace_id, id, size, file_count, entries, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			wsID, s.ID, s.Size, s.FileCount, string(entries), ms(s.CreatedAt))
		return err
	})
}

// FindSnapshot returns a snapshot with its entries.
func (db *DB) FindSnapshot(ctx context.Context, workspace, id string) (*atelier.Snapshot, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	s := &atelier.Snapshot{ID: id, Workspace: workspace}
	var entries string
	var created int64
	err = db.read.QueryRowContext(ctx, `SELECT size, file_count, entries, created_at FROM snapshots WHERE workspace_id = ? AND id = ?`, wsID, id).
		Scan(&s.Size, &s.FileCount, &entries, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, atelier.Errorf(atelier.ENOTFOUND, "snapshot %q not found", id)
	} else if err != nil {
		return nil, err
	}
	s.CreatedAt = fromMS(created)
	return s, json.Unmarshal([]byte(entries), &s.Entries)
}
