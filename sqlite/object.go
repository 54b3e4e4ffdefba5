package sqlite

import (
	"context"
	"strings"

	"github.com/atelier-ml/atelier"
)

// MissingObjects returns the digests the workspace does not hold, in the order given.
func (db *DB) MissingObjects(ctx context.Context, workspace string, digests []string) ([]string, error) {
	wsID, err := db.workspaceID(ctx, db.read, workspace)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	// SQLite allows 32766 variables a statement; stay well below.
	for start := 0; start < len(digests); start += 500 {
		part := digests[start:min(start+500, len(digests))]
		args := make([]any, 0, len(part)+1)
		args = append(args, wsID)
		for _, d := range part {
			args = append(args, d)
		}
		rows, err := db.read.QueryContext(ctx, `SELECT digest FROM workspace_objects WHERE workspace_id = ? AND digest IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return nil, err
			}
			held[d] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	missing := []string{}
	for _, d := range digests {
		if !held[d] {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// HoldObjects records that the workspace holds the objects.
func (db *DB) HoldObjects(ctx context.Context, workspace string, objs []atelier.Object) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO workspace_objects (workspace_id, digest, size) VALUES (?, ?, ?)`, wsID, o.Digest, o.Size); err != nil {
				return err
			}
		}
		return nil
	})
}
