package sqlite

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// RenameRun sets a run's display name.
func (db *DB) RenameRun(ctx context.Context, workspace, id, name string) (*atelier.Run, error) {
	if err := atelier.ValidateRunName(name); err != nil {
		return nil, err
	}
	var out *atelier.Run
	err := db.update(ctx, func(tx *txn) error {
		if err := db.checkLiveRun(ctx, tx, workspace, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET name = ? WHERE id = ?`, name, id); err != nil {
			return err
		}
		var err error
		out, err = db.findRun(ctx, tx, workspace, id)
		return err
	})
	return out, err
}
