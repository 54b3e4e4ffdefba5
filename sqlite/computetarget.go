package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/atelier-ml/atelier"
)

var _ atelier.ComputeTargetStore = (*DB)(nil)

// computeConfig is the configuration column: the block of the target's kind, as JSON, so a
// new field needs no migration.
type computeConfig struct {
	SSH        *atelier.SSHCompute        `json:"ssh,omitempty"`
	Slurm      *atelier.SlurmCompute      `json:"slurm,omitempty"`
	Kubernetes *atelier.KubernetesCompute `json:"kubernetes,omitempty"`
	Podman     *atelier.PodmanCompute     `json:"podman,omitempty"`
}

func computeTargetNotFound(name string) error {
	return atelier.Errorf(atelier.ENOTFOUND, "compute target %q not found", name)
}

// CreateComputeTarget stores a workspace's compute target.
func (db *DB) CreateComputeTarget(ctx context.Context, workspace string, t *atelier.ComputeTarget) error {
	if err := atelier.ValidateName("compute target", t.Name); err != nil {
		return err
	}
	if t.CreatedBy == "" {
		t.CreatedBy = atelier.PrincipalName(ctx)
	}
	if t.Credentials == nil {
		t.Credentials = []string{}
	}
	cfg, _ := json.Marshal(computeConfig{SSH: t.SSH, Slurm: t.Slurm, Kubernetes: t.Kubernetes, Podman: t.Podman})
	creds, _ := json.Marshal(t.Credentials)
	now := db.now()
	t.Workspace, t.CreatedAt = workspace, &now
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO compute_targets (workspace_id, name, kind, description, max_concurrent_runs, config, credentials, sealed, activity, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, wsID, t.Name, t.Kind, t.Description, t.MaxConcurrentRuns, string(cfg), string(creds),
			t.Sealed, t.Activity, t.CreatedBy, ms(now), ms(now))
		if isUniqueViolation(err) {
			return atelier.Errorf(atelier.ECONFLICT, "compute target %q already exists in workspace %q", t.Name, workspace)
		}
		return err
	})
}

const computeTargetColumns = `c.name, c.kind, c.description, c.max_concurrent_runs, c.config, c.credentials, c.sealed, c.activity, c.created_by, c.created_at`

func scanComputeTarget(row interface{ Scan(...any) error }, workspace string) (*atelier.ComputeTarget, error) {
	t := &atelier.ComputeTarget{Workspace: workspace}
	var cfgJSON, credsJSON string
	var created int64
	if err := row.Scan(&t.Name, &t.Kind, &t.Description, &t.MaxConcurrentRuns, &cfgJSON, &credsJSON, &t.Sealed, &t.Activity, &t.CreatedBy, &created); err != nil {
		return nil, err
	}
	var cfg computeConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return nil, err
	}
	t.SSH, t.Slurm, t.Kubernetes, t.Podman = cfg.SSH, cfg.Slurm, cfg.Kubernetes, cfg.Podman
	if err := json.Unmarshal([]byte(credsJSON), &t.Credentials); err != nil || t.Credentials == nil {
		t.Credentials = []string{}
	}
	at := fromMS(created)
	t.CreatedAt = &at
	return t, nil
}

// FindComputeTarget returns a stored compute target with its sealed credentials.
func (db *DB) FindComputeTarget(ctx context.Context, workspace, name string) (*atelier.ComputeTarget, error) {
	t, err := scanComputeTarget(db.read.QueryRowContext(ctx, `SELECT `+computeTargetColumns+` FROM compute_targets c JOIN workspaces w ON w.id = c.workspace_id
		WHERE w.name = ? AND c.name = ?`, workspace, name), workspace)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.workspaceID(ctx, db.read, workspace); err != nil {
			return nil, err
		}
		return nil, computeTargetNotFound(name)
	}
	return t, err
}

// ListComputeTargets returns a workspace's stored compute targets by name, or with workspace ""
// every workspace's, by workspace and name.
func (db *DB) ListComputeTargets(ctx context.Context, workspace string) ([]*atelier.ComputeTarget, error) {
	query, args := `SELECT w.name, `+computeTargetColumns+` FROM compute_targets c JOIN workspaces w ON w.id = c.workspace_id ORDER BY w.name, c.name`, []any{}
	if workspace != "" {
		wsID, err := db.workspaceID(ctx, db.read, workspace)
		if err != nil {
			return nil, err
		}
		query = `SELECT w.name, ` + computeTargetColumns + ` FROM compute_targets c JOIN workspaces w ON w.id = c.workspace_id WHERE c.workspace_id = ? ORDER BY c.name`
		args = append(args, wsID)
	}
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []*atelier.ComputeTarget{}
	for rows.Next() {
		var ws string
		t, err := scanComputeTarget(prefixScanner{rows, &ws}, "")
		if err != nil {
			return nil, err
		}
		t.Workspace = ws
		list = append(list, t)
	}
	return list, rows.Err()
}

// prefixScanner scans a row's first column into first and the rest as the next scanner would.
type prefixScanner struct {
	row   interface{ Scan(...any) error }
	first *string
}

func (p prefixScanner) Scan(dest ...any) error { return p.row.Scan(append([]any{p.first}, dest...)...) }

// activeStatuses is the SQL list of the statuses of active runs ('Preparing', ...), from the
// domain's own definition.
func activeStatuses() string {
	var list []string
	for _, s := range atelier.RunStatuses {
		if s.Active() {
			list = append(list, "'"+string(s)+"'")
		}
	}
	return strings.Join(list, ", ")
}

// computeTargetRuns counts the runs queued and active on a compute target, in one workspace
// (wsID) or in all (wsID 0). Two queries, so each uses its partial index (runs_queued,
// runs_active) rather than scanning the runs.
func computeTargetRuns(ctx context.Context, q querier, wsID int64, name string) (queued, active int, err error) {
	ws, args := "", []any{name}
	if wsID != 0 {
		// "+": not through runs_workspace, which would read every run of the workspace.
		ws, args = ` AND +workspace_id = ?`, append(args, wsID)
	}
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE compute = ? AND status = 'Queued'`+ws, args...).Scan(&queued); err != nil {
		return 0, 0, err
	}
	err = q.QueryRowContext(ctx, `SELECT count(*) FROM runs WHERE status IN (`+activeStatuses()+`) AND compute = ?`+ws, args...).Scan(&active)
	return queued, active, err
}

// ComputeTargetRuns counts the runs queued and active on a compute target of a workspace (of
// every workspace when workspace is "").
func (db *DB) ComputeTargetRuns(ctx context.Context, workspace, name string) (queued, active int, err error) {
	var wsID int64
	if workspace != "" {
		if wsID, err = db.workspaceID(ctx, db.read, workspace); err != nil {
			return 0, 0, err
		}
	}
	return computeTargetRuns(ctx, db.read, wsID, name)
}

// DeleteComputeTarget removes a stored compute target unless runs are queued or active on it:
// the check and the delete are one transaction, so a run cannot slip in between.
func (db *DB) DeleteComputeTarget(ctx context.Context, workspace, name string) error {
	return db.update(ctx, func(tx *txn) error {
		wsID, err := db.workspaceID(ctx, tx, workspace)
		if err != nil {
			return err
		}
		queued, active, err := computeTargetRuns(ctx, tx, wsID, name)
		if err != nil {
			return err
		}
		if queued+active > 0 {
			return atelier.Errorf(atelier.ECONFLICT, "compute target %q has %d queued and %d active runs", name, queued, active)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM compute_targets WHERE workspace_id = ? AND name = ?`, wsID, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return computeTargetNotFound(name)
		}
		return nil
	})
}
