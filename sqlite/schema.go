package sqlite

import (
	"context"
	"fmt"
)

// migrations are applied in order; each runs once, recorded in PRAGMA user_version.
// Never edit a released migration: append a new one.
var migrations = []string{`
CREATE TABLE workspaces (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	description TEXT NOT NULL DEFAULT '',
	created_by  TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
);
CREATE TABLE experiments (
	id           INTEGER PRIMARY KEY,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	description  TEXT NOT NULL DEFAULT '',
	archived     INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (workspace_id, name)
);
CREATE TABLE runs (
	id            TEXT PRIMARY KEY,
	workspace_id  INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
	parent_id     TEXT,
	name          TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	started_at    INTEGER,
	ended_at      INTEGER,
	created_by    TEXT NOT NULL DEFAULT '',
	compute       TEXT NOT NULL DEFAULT '',
	config        TEXT,
	snapshot_id   TEXT NOT NULL DEFAULT '',
	error         TEXT NOT NULL DEFAULT '',
	exit_code     INTEGER,
	git           TEXT
);
CREATE INDEX runs_workspace ON runs (workspace_id, created_at);
CREATE INDEX runs_experiment ON runs (experiment_id, created_at);
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX runs_active ON runs (status) WHERE status IN ('Preparing', 'Running', 'Finalizing', 'CancelRequested');

CREATE TABLE run_params (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX run_params_kv ON run_params (key, value);
CREATE TABLE run_tags (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX run_tags_kv ON run_tags (key, value);
CREATE TABLE run_properties (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX run_properties_kv ON run_properties (key, value);

-- The latest value of each metric, so runs are read and searched without their series.
-- value is NULL for NaN (SQLite has no NaN); is_nan tells NaN from a metric without a value.
CREATE TABLE metric_latest (
	run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	name      TEXT NOT NULL,
	kind      TEXT NOT NULL,
	step      INTEGER NOT NULL,
	timestamp INTEGER NOT NULL,
	value     REAL,
	is_nan    INTEGER NOT NULL DEFAULT 0,
	count     INTEGER NOT NULL,
	next_seq  INTEGER NOT NULL,
	last      TEXT,
	PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX metric_latest_value ON metric_latest (name, value);

-- Scalar series in compressed chunks (package series), one per logging call and name.
CREATE TABLE metric_chunks (
	run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	name     TEXT NOT NULL,
	seq      INTEGER NOT NULL,
	min_step INTEGER NOT NULL,
	max_step INTEGER NOT NULL,
	count    INTEGER NOT NULL,
	data     BLOB NOT NULL,
	PRIMARY KEY (run_id, name, seq)
);
-- Lists, rows, tables and images.
CREATE TABLE metric_records (
	run_id    TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	name      TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	kind      TEXT NOT NULL,
	timestamp INTEGER NOT NULL,
	value     TEXT,
	path      TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, name, seq)
);

CREATE TABLE files (
	run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	path       TEXT NOT NULL,
	digest     TEXT NOT NULL,
	size       INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (run_id, path)
) WITHOUT ROWID;
CREATE INDEX files_digest ON files (digest);
CREATE TABLE log_chunks (
	run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	path   TEXT NOT NULL,
	offset INTEGER NOT NULL,
	data   BLOB NOT NULL,
	PRIMARY KEY (run_id, path, offset)
);
CREATE TABLE logs (
	run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	path       TEXT NOT NULL,
	size       INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (run_id, path)
) WITHOUT ROWID;

CREATE TABLE snapshots (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	id           TEXT NOT NULL,
	size         INTEGER NOT NULL,
	file_count   INTEGER NOT NULL,
	entries      TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, id)
);

CREATE TABLE activities (
	id           TEXT PRIMARY KEY,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	kind         TEXT NOT NULL,
	target       TEXT NOT NULL,
	status       TEXT NOT NULL,
	percent      REAL NOT NULL DEFAULT 0,
	message      TEXT NOT NULL DEFAULT '',
	started_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	ended_at     INTEGER,
	error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activities_workspace ON activities (workspace_id, started_at);
CREATE INDEX activities_target ON activities (target);

CREATE TABLE tokens (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL DEFAULT '',
	kind       TEXT NOT NULL,
	owner      TEXT NOT NULL DEFAULT '',
	workspace  TEXT NOT NULL DEFAULT '',
	run_id     TEXT NOT NULL DEFAULT '',
	hash       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER,
	revoked_at INTEGER
);
`, `
-- The objects each workspace may use (see atelier.Store.MissingObjects).
CREATE TABLE workspace_objects (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	digest       TEXT NOT NULL,
	size         INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, digest)
) WITHOUT ROWID;
CREATE INDEX runs_queued ON runs (compute, created_at) WHERE status = 'Queued';
`, `
-- The model registry (model.go). Versions are numbered from models.last_version, so a deleted
-- version's number is never given again while the model exists.
CREATE TABLE models (
	id           INTEGER PRIMARY KEY,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	last_version INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (workspace_id, name)
);
CREATE TABLE model_versions (
	id                INTEGER PRIMARY KEY,
	model_id          INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
	workspace_id      INTEGER NOT NULL,
	version           INTEGER NOT NULL,
	description       TEXT NOT NULL DEFAULT '',
	framework         TEXT NOT NULL DEFAULT '',
	framework_version TEXT NOT NULL DEFAULT '',
	run_id            TEXT,
	experiment        TEXT NOT NULL DEFAULT '',
	path              TEXT NOT NULL DEFAULT '',
	datasets          TEXT NOT NULL DEFAULT '[]',
	file_count        INTEGER NOT NULL,
	size              INTEGER NOT NULL,
	created_by        TEXT NOT NULL DEFAULT '',
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL,
	UNIQUE (model_id, version)
);
CREATE INDEX model_versions_workspace ON model_versions (workspace_id, created_at);
CREATE INDEX model_versions_run ON model_versions (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE model_version_tags (
	version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	PRIMARY KEY (version_id, key)
) WITHOUT ROWID;
CREATE INDEX model_version_tags_kv ON model_version_tags (key, value);
CREATE TABLE model_version_properties (
	version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	PRIMARY KEY (version_id, key)
) WITHOUT ROWID;
CREATE INDEX model_version_properties_kv ON model_version_properties (key, value);
-- Files reference content-addressed objects: registering from a run copies rows, not bytes.
CREATE TABLE model_version_files (
	version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
	path       TEXT NOT NULL,
	digest     TEXT NOT NULL,
	size       INTEGER NOT NULL,
	PRIMARY KEY (version_id, path)
) WITHOUT ROWID;
CREATE INDEX model_version_files_digest ON model_version_files (digest);
CREATE TABLE model_aliases (
	model_id   INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
	alias      TEXT NOT NULL,
	version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
	PRIMARY KEY (model_id, alias)
) WITHOUT ROWID;
CREATE INDEX model_aliases_version ON model_aliases (version_id);
-- What uses a version (images, services); a referenced version cannot be deleted. The cascade
-- serves only the deletion of a whole workspace: the store checks before deleting a version.
CREATE TABLE model_references (
	version_id INTEGER NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	ref_id     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (version_id, kind, ref_id)
) WITHOUT ROWID;
`, `
-- Datastores: configuration in columns, credentials sealed (AES-GCM, by the service) in one blob.
CREATE TABLE datastores (
	id           INTEGER PRIMARY KEY,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	kind         TEXT NOT NULL,
	is_default   INTEGER NOT NULL DEFAULT 0,
	config       TEXT NOT NULL,
	credentials  TEXT NOT NULL DEFAULT '[]',
	sealed       BLOB,
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (workspace_id, name)
);
CREATE UNIQUE INDEX datastores_default ON datastores (workspace_id) WHERE is_default;
`, `
-- Users, workspace roles and the audit log (issue 7). Tokens already have an
-- owner: a user's tokens name the user there.
CREATE TABLE users (
	name          TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	admin         INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL,
	disabled_at   INTEGER
);
CREATE TABLE members (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	user         TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	role         TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, user)
) WITHOUT ROWID;
CREATE INDEX members_user ON members (user);
-- The workspace is kept by name: the record of a write outlives the workspace.
CREATE TABLE audit (
	id        INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	workspace TEXT NOT NULL DEFAULT '',
	user      TEXT NOT NULL,
	kind      TEXT NOT NULL,
	token_id  TEXT NOT NULL DEFAULT '',
	method    TEXT NOT NULL,
	path      TEXT NOT NULL,
	status    INTEGER NOT NULL,
	remote    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_workspace ON audit (workspace, time);
CREATE INDEX audit_user ON audit (user, time);
`, `
-- Run lineage: the datastore paths a run reads (download) and writes (upload). The datastore
-- is kept by name: the record outlives a datastore deleted with force.
CREATE TABLE run_data (
	run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	datastore    TEXT NOT NULL,
	path         TEXT NOT NULL,
	mode         TEXT NOT NULL,
	PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX run_data_datastore ON run_data (workspace_id, datastore);
`, `
-- The secrets vault (issue 7): values sealed with the server's master key, bound to their
-- workspace and name; the store never sees plaintext.
CREATE TABLE secrets (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	sealed       BLOB NOT NULL,
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, name)
) WITHOUT ROWID;
`, `
-- Each experiment's run count and latest run, kept as runs are created (runs are never
-- deleted or moved): counting them on every read cost time in proportion to the runs, on
-- every experiment lookup (MLflow's runs/create makes one).
CREATE TABLE experiment_stats (
	experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id) ON DELETE CASCADE,
	run_count     INTEGER NOT NULL,
	last_run_at   INTEGER NOT NULL
);
INSERT INTO experiment_stats (experiment_id, run_count, last_run_at)
	SELECT experiment_id, count(*), max(created_at) FROM runs GROUP BY experiment_id;
`, `
-- The sha256 of cloud objects that could not carry it in their metadata (atelier.DatastoreDigest),
-- valid while the object keeps its etag.
CREATE TABLE datastore_digests (
	datastore_id INTEGER NOT NULL REFERENCES datastores(id) ON DELETE CASCADE,
	path         TEXT NOT NULL,
	etag         TEXT NOT NULL,
	sha256       TEXT NOT NULL,
	PRIMARY KEY (datastore_id, path)
) WITHOUT ROWID;
`, `
-- Durable work (issue 17): who acts on a piece of long-running work (a run executing on a
-- compute target, later an image build or a deployment) until when, and the driver's handle
-- of it (what the compute target calls it), so a server that restarts, or another one, can
-- ask the driver what became of it.
CREATE TABLE leases (
	kind      TEXT NOT NULL,
	id        TEXT NOT NULL,
	workspace TEXT NOT NULL DEFAULT '',
	owner     TEXT NOT NULL,
	expires   INTEGER NOT NULL,
	handle    TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX leases_owner ON leases (owner, kind);
`, `
-- A workspace's compute targets (issue 17): the built-in "local" is the server's own and is
-- not stored. config is the block of the target's kind as JSON; sealed is its credentials,
-- encrypted with the server's master key (credentials lists their names). Runs name their
-- target by (workspace, name).
CREATE TABLE compute_targets (
	id                  INTEGER PRIMARY KEY,
	workspace_id        INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name                TEXT NOT NULL,
	kind                TEXT NOT NULL,
	description         TEXT NOT NULL DEFAULT '',
	max_concurrent_runs INTEGER NOT NULL,
	config              TEXT NOT NULL,
	credentials         TEXT NOT NULL DEFAULT '[]',
	sealed              BLOB,
	activity            TEXT NOT NULL DEFAULT '',
	created_by          TEXT NOT NULL DEFAULT '',
	created_at          INTEGER NOT NULL,
	updated_at          INTEGER NOT NULL,
	UNIQUE (workspace_id, name)
);
`, `
-- Experiments get tags and an artifact location of their own (issue 19): the MLflow API kept
-- them in hidden runs.
ALTER TABLE experiments ADD COLUMN artifact_location TEXT NOT NULL DEFAULT '';
CREATE TABLE experiment_tags (
	experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
	key           TEXT NOT NULL,
	value         TEXT NOT NULL,
	PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;
`, `
-- Registered models get a description and tags of their own, and may exist with no version
-- (issue 19). A model made by its first version (kept = 0) goes with its last one; one created
-- on its own or given metadata (kept = 1) stays until deleted.
ALTER TABLE models ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE models ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
CREATE TABLE model_tags (
	model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
	key      TEXT NOT NULL,
	value    TEXT NOT NULL,
	PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
`, `
-- Images (issue 20): models + a scoring script + dependencies, built into the workspace's image
-- registry as <workspace>/<name>:<version>. spec holds what the image is built from (models,
-- entry script, source snapshot, dependencies file, base) as JSON; log the build's log (its
-- last MiB). Versions are numbered per name from image_names, never given twice.
CREATE TABLE image_names (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	last_version INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, name)
) WITHOUT ROWID;
CREATE TABLE images (
	id           INTEGER PRIMARY KEY,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	version      INTEGER NOT NULL,
	description  TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL,
	error        TEXT NOT NULL DEFAULT '',
	spec         TEXT NOT NULL,
	digest       TEXT NOT NULL DEFAULT '',
	size         INTEGER NOT NULL DEFAULT 0,
	layers       TEXT NOT NULL DEFAULT '[]',
	log          TEXT NOT NULL DEFAULT '',
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	started_at   INTEGER,
	ended_at     INTEGER,
	UNIQUE (workspace_id, name, version)
);
CREATE INDEX images_workspace ON images (workspace_id, created_at);
CREATE INDEX images_queue ON images (status, created_at) WHERE status IN ('Queued', 'Building');
CREATE TABLE image_tags (
	image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
	key      TEXT NOT NULL,
	value    TEXT NOT NULL,
	PRIMARY KEY (image_id, key)
) WITHOUT ROWID;
`, `
-- A run's lifecycle (issue 19): deleted runs are kept, refuse writes and may be restored. The
-- MLflow API marked them with the tag mlflow.lifecycleStage = deleted; that mark becomes this.
ALTER TABLE runs ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET deleted = 1 WHERE id IN (SELECT run_id FROM run_tags WHERE key = 'mlflow.lifecycleStage' AND value = 'deleted');
DELETE FROM run_tags WHERE key = 'mlflow.lifecycleStage';
`, `
-- The MLflow API's hidden record runs become the records they stood for (issue 19), then go:
-- an experiment record's tags become the experiment's (the first record of each experiment
-- wins, as the API read them); a live registered-model record becomes the model's own
-- description and tags, the model kept with or without versions (the first record of a name
-- wins). Deleted registered-model records stood for deleted models: they just go.
INSERT OR IGNORE INTO experiment_tags (experiment_id, key, value)
SELECT x.experiment_id, t.key, t.value FROM (
	SELECT r.id, r.experiment_id, row_number() OVER (PARTITION BY r.experiment_id ORDER BY r.created_at, r.id) AS k
	FROM runs r JOIN run_properties p ON p.run_id = r.id AND p.key = 'mlflow.experimentRecord'
) x JOIN run_tags t ON t.run_id = x.id
WHERE x.k = 1;
CREATE TEMP TABLE model_records AS
SELECT id, workspace_id, name, created_at FROM (
	SELECT r.id, r.workspace_id, n.value AS name, r.created_at,
		row_number() OVER (PARTITION BY r.workspace_id, n.value ORDER BY r.created_at, r.id) AS k
	FROM runs r
	JOIN run_properties p ON p.run_id = r.id AND p.key = 'mlflow.record' AND p.value = 'registered-model'
	JOIN run_tags n ON n.run_id = r.id AND n.key = 'mlflow.registeredModelName'
	WHERE r.deleted = 0
) WHERE k = 1;
INSERT INTO models (workspace_id, name, last_version, description, kept, created_at, updated_at)
SELECT x.workspace_id, x.name, 0,
	coalesce((SELECT value FROM run_tags WHERE run_id = x.id AND key = 'mlflow.registeredModelDescription'), ''),
	1, x.created_at, x.created_at
FROM model_records x WHERE true
ON CONFLICT (workspace_id, name) DO UPDATE SET kept = 1, description = excluded.description,
	created_at = min(models.created_at, excluded.created_at);
INSERT OR IGNORE INTO model_tags (model_id, key, value)
SELECT m.id, t.key, t.value FROM model_records x
JOIN models m ON m.workspace_id = x.workspace_id AND m.name = x.name
JOIN run_tags t ON t.run_id = x.id
WHERE t.key NOT IN ('mlflow.registeredModelName', 'mlflow.registeredModelDescription');
DROP TABLE model_records;
CREATE TEMP TABLE record_runs AS
SELECT run_id AS id FROM run_properties
WHERE key = 'mlflow.experimentRecord' OR (key = 'mlflow.record' AND value = 'registered-model');
DELETE FROM activities WHERE id IN (SELECT id FROM record_runs);
DELETE FROM runs WHERE id IN (SELECT id FROM record_runs);
DROP TABLE record_runs;
DELETE FROM experiment_stats WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = experiment_stats.experiment_id);
UPDATE experiment_stats SET
	run_count = (SELECT count(*) FROM runs r WHERE r.experiment_id = experiment_stats.experiment_id),
	last_run_at = (SELECT max(created_at) FROM runs r WHERE r.experiment_id = experiment_stats.experiment_id);
`, `
-- Web services (issue 21): images served as scoring endpoints. images holds the images served
-- and their traffic shares ([{"image": "name:version", "percent": 100}]), config the
-- deployment configuration, both as JSON; keys the two service keys, sealed by the server.
-- service_images records which images a service uses: such an image cannot be deleted.
CREATE TABLE web_services (
	id           INTEGER PRIMARY KEY,
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	description  TEXT NOT NULL DEFAULT '',
	target       TEXT NOT NULL,
	images       TEXT NOT NULL,
	config       TEXT NOT NULL,
	state        TEXT NOT NULL,
	error        TEXT NOT NULL DEFAULT '',
	keys         BLOB,
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (workspace_id, name)
);
CREATE TABLE web_service_tags (
	service_id INTEGER NOT NULL REFERENCES web_services(id) ON DELETE CASCADE,
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	PRIMARY KEY (service_id, key)
) WITHOUT ROWID;
CREATE TABLE service_images (
	service_id INTEGER NOT NULL REFERENCES web_services(id) ON DELETE CASCADE,
	image_id   INTEGER NOT NULL REFERENCES images(id),
	PRIMARY KEY (service_id, image_id)
) WITHOUT ROWID;
CREATE INDEX service_images_image ON service_images (image_id);
`, `
-- Logged models (MLflow 3's LoggedModel) are records of their own (issue 19): files, params,
-- tags, metrics measured on them, a status; runs link to the models they produced or used. The
-- MLflow API kept each in a hidden run (property mlflow.record = logged-model, id "m-" + the
-- run's id, a child of its source run, files under outputs/, the source run's links in the
-- hidden tag mlflow.modelOutputs): those become these records, keeping their ids, then go.
CREATE TABLE logged_models (
	id             TEXT PRIMARY KEY,
	workspace_id   INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	experiment_id  INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
	name           TEXT NOT NULL,
	model_type     TEXT NOT NULL DEFAULT '',
	source_run_id  TEXT,
	status         TEXT NOT NULL,
	status_message TEXT NOT NULL DEFAULT '',
	deleted        INTEGER NOT NULL DEFAULT 0,
	created_by     TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);
CREATE INDEX logged_models_workspace ON logged_models (workspace_id, created_at) WHERE deleted = 0;
CREATE INDEX logged_models_experiment ON logged_models (experiment_id, created_at) WHERE deleted = 0;
CREATE INDEX logged_models_source ON logged_models (source_run_id) WHERE source_run_id IS NOT NULL;
CREATE TABLE logged_model_params (
	model_id TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
	key      TEXT NOT NULL,
	value    TEXT NOT NULL,
	PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE INDEX logged_model_params_kv ON logged_model_params (key, value);
CREATE TABLE logged_model_tags (
	model_id TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
	key      TEXT NOT NULL,
	value    TEXT NOT NULL,
	PRIMARY KEY (model_id, key)
) WITHOUT ROWID;
CREATE INDEX logged_model_tags_kv ON logged_model_tags (key, value);
CREATE TABLE logged_model_metrics (
	id             INTEGER PRIMARY KEY,
	model_id       TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
	name           TEXT NOT NULL,
	step           INTEGER NOT NULL,
	timestamp      INTEGER NOT NULL,
	value          REAL,
	is_nan         INTEGER NOT NULL DEFAULT 0,
	run_id         TEXT NOT NULL DEFAULT '',
	dataset_name   TEXT NOT NULL DEFAULT '',
	dataset_digest TEXT NOT NULL DEFAULT ''
);
CREATE INDEX logged_model_metrics_model ON logged_model_metrics (model_id, name, step, timestamp);
CREATE TABLE logged_model_files (
	model_id   TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
	path       TEXT NOT NULL,
	digest     TEXT NOT NULL,
	size       INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (model_id, path)
) WITHOUT ROWID;
CREATE INDEX logged_model_files_digest ON logged_model_files (digest);
CREATE TABLE run_models (
	id       INTEGER PRIMARY KEY,
	run_id   TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	model_id TEXT NOT NULL REFERENCES logged_models(id) ON DELETE CASCADE,
	input    INTEGER NOT NULL,
	step     INTEGER NOT NULL,
	UNIQUE (run_id, input, model_id, step)
);
CREATE INDEX run_models_model ON run_models (model_id);
CREATE TEMP TABLE model_runs AS
SELECT r.* FROM runs r JOIN run_properties p ON p.run_id = r.id AND p.key = 'mlflow.record' AND p.value = 'logged-model';
INSERT INTO logged_models (id, workspace_id, experiment_id, name, model_type, source_run_id, status, status_message,
	deleted, created_by, created_at, updated_at)
SELECT 'm-' || r.id, r.workspace_id, r.experiment_id, r.name,
	coalesce((SELECT value FROM run_properties WHERE run_id = r.id AND key = 'mlflow.modelType'), ''),
	CASE WHEN r.parent_id IN (SELECT id FROM runs) AND r.parent_id NOT IN (SELECT id FROM model_runs) THEN r.parent_id END,
	CASE r.status WHEN 'Completed' THEN 'Ready' WHEN 'Failed' THEN 'Failed' WHEN 'Canceled' THEN 'Failed' ELSE 'Pending' END,
	r.error, r.deleted, r.created_by, r.created_at, coalesce(r.ended_at, r.created_at)
FROM model_runs r;
INSERT INTO logged_model_params (model_id, key, value)
SELECT 'm-' || run_id, key, value FROM run_params WHERE run_id IN (SELECT id FROM model_runs);
INSERT INTO logged_model_tags (model_id, key, value) SELECT 'm-' || run_id, key, value FROM run_tags
WHERE run_id IN (SELECT id FROM model_runs) AND key NOT IN ('mlflow.lifecycleStage', 'mlflow.datasetInputs', 'mlflow.modelOutputs');
INSERT INTO logged_model_files (model_id, path, digest, size, created_at)
SELECT 'm-' || run_id, substr(path, 9), digest, size, created_at
FROM files WHERE run_id IN (SELECT id FROM model_runs) AND path GLOB 'outputs/?*';
INSERT OR IGNORE INTO run_models (run_id, model_id, input, step)
SELECT t.run_id, json_extract(j.value, '$.model_id'), 0, coalesce(json_extract(j.value, '$.step'), 0)
FROM run_tags t, json_each(CASE WHEN json_valid(t.value) AND json_type(t.value) = 'array' THEN t.value ELSE '[]' END) j
WHERE t.key = 'mlflow.modelOutputs' AND t.run_id NOT IN (SELECT id FROM model_runs)
	AND json_extract(j.value, '$.model_id') IN (SELECT id FROM logged_models);
DELETE FROM run_tags WHERE key = 'mlflow.modelOutputs';
UPDATE model_versions SET run_id = NULL WHERE run_id IN (SELECT id FROM model_runs);
DELETE FROM activities WHERE id IN (SELECT id FROM model_runs);
DELETE FROM runs WHERE id IN (SELECT id FROM model_runs);
UPDATE experiment_stats SET
	run_count = (SELECT count(*) FROM runs r WHERE r.experiment_id = experiment_stats.experiment_id),
	last_run_at = (SELECT max(created_at) FROM runs r WHERE r.experiment_id = experiment_stats.experiment_id)
WHERE experiment_id IN (SELECT experiment_id FROM model_runs);
DELETE FROM experiment_stats WHERE run_count = 0;
DROP TABLE model_runs;
`, `
-- Run searches at scale (issue 19, query.go): MLflow's order (newest start first, then id) read
-- off an index so a page stops at its end, and runs found by name or status by an index.
CREATE INDEX runs_experiment_started ON runs (experiment_id, started_at DESC, id);
CREATE INDEX runs_workspace_started ON runs (workspace_id, started_at DESC, id);
CREATE INDEX runs_name ON runs (workspace_id, name);
CREATE INDEX runs_status ON runs (workspace_id, status);
`, `
-- Each model's number of versions (issue 19, model.go), kept by the statements that add and
-- delete versions: finding a model (which every new version through the MLflow API does) no
-- longer counts its versions, which cost a millisecond per few thousand.
ALTER TABLE models ADD COLUMN version_count INTEGER NOT NULL DEFAULT 0;
UPDATE models SET version_count = (SELECT count(*) FROM model_versions v WHERE v.model_id = models.id);
`, `
-- Searches of records walk an index in their page's order and stop after the page (issue 19,
-- recordquery.go): a tag test is one lookup on the tags' (key, value) index; experiments are
-- listed newest first (MLflow's default order: creation time down, id up); logged models newest
-- first, their id breaking ties.
CREATE INDEX experiment_tags_kv ON experiment_tags (key, value);
CREATE INDEX model_tags_kv ON model_tags (key, value);
CREATE INDEX experiments_created ON experiments (workspace_id, created_at DESC, id);
DROP INDEX IF EXISTS logged_models_workspace;
DROP INDEX IF EXISTS logged_models_experiment;
CREATE INDEX logged_models_workspace ON logged_models (workspace_id, created_at, id) WHERE deleted = 0;
CREATE INDEX logged_models_experiment ON logged_models (experiment_id, created_at, id) WHERE deleted = 0;
`, `
-- A model version may be a reference to files stored elsewhere (issue 19, model.go): its source
-- URI, with no files and no object held. Empty for a version of stored files.
ALTER TABLE model_versions ADD COLUMN source TEXT NOT NULL DEFAULT '';
`, `
-- Datasets (issue 24, dataset.go): registered, versioned references to datastore files. The
-- definition (paths, format, transforms) is JSON and never changes; description and tags do.
CREATE TABLE datasets (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	version      INTEGER NOT NULL,
	type         TEXT NOT NULL,
	definition   TEXT NOT NULL,
	description  TEXT NOT NULL DEFAULT '',
	tags         TEXT NOT NULL DEFAULT '{}',
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, name, version)
);
-- Lineage: the runs that consumed a dataset version.
CREATE TABLE dataset_runs (
	workspace_id INTEGER NOT NULL,
	name         TEXT NOT NULL,
	version      INTEGER NOT NULL,
	run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	input        TEXT NOT NULL DEFAULT '',
	used_at      INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, name, version, run_id),
	FOREIGN KEY (workspace_id, name, version) REFERENCES datasets (workspace_id, name, version) ON DELETE CASCADE
);
CREATE INDEX dataset_runs_run ON dataset_runs (run_id);
`, `
-- The workspace image registry's metadata (issue 20, registry.go; its blobs are in the artifact
-- store). Repositories are <workspace>/<name> and exist while they hold a manifest or a link.
-- A manifest's body is kept as pushed; blobs and manifests are its descriptors' JSON, in order.
CREATE TABLE registry_manifests (
	repo          TEXT NOT NULL,
	digest        TEXT NOT NULL,
	media_type    TEXT NOT NULL,
	body          BLOB NOT NULL,
	blobs         TEXT NOT NULL DEFAULT '[]',
	manifests     TEXT NOT NULL DEFAULT '[]',
	subject       TEXT NOT NULL DEFAULT '',
	artifact_type TEXT NOT NULL DEFAULT '',
	annotations   TEXT,
	PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX registry_manifests_subject ON registry_manifests (repo, subject) WHERE subject != '';
-- What each manifest references (kind 'blob' or 'manifest'), for the checks of deletes and GC.
CREATE TABLE registry_references (
	repo     TEXT NOT NULL,
	manifest TEXT NOT NULL,
	kind     TEXT NOT NULL,
	digest   TEXT NOT NULL,
	PRIMARY KEY (repo, manifest, kind, digest),
	FOREIGN KEY (repo, manifest) REFERENCES registry_manifests (repo, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX registry_references_digest ON registry_references (digest, kind, repo);
CREATE TABLE registry_tags (
	repo      TEXT NOT NULL,
	tag       TEXT NOT NULL,
	digest    TEXT NOT NULL,
	tagged_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (repo, tag),
	FOREIGN KEY (repo, digest) REFERENCES registry_manifests (repo, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX registry_tags_digest ON registry_tags (repo, digest);
-- The blobs each repository may read (the registry's isolation between repositories).
CREATE TABLE registry_links (
	repo      TEXT NOT NULL,
	digest    TEXT NOT NULL,
	size      INTEGER NOT NULL,
	linked_at INTEGER NOT NULL,
	PRIMARY KEY (repo, digest)
) WITHOUT ROWID;
CREATE INDEX registry_links_digest ON registry_links (digest);
CREATE TABLE registry_uploads (
	id         TEXT PRIMARY KEY,
	repo       TEXT NOT NULL,
	size       INTEGER NOT NULL,
	started_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX registry_uploads_updated ON registry_uploads (updated_at);
CREATE TABLE registry_upload_chunks (
	upload_id TEXT NOT NULL REFERENCES registry_uploads (id) ON DELETE CASCADE,
	seq       INTEGER NOT NULL,
	digest    TEXT NOT NULL,
	size      INTEGER NOT NULL,
	PRIMARY KEY (upload_id, seq)
);
CREATE INDEX registry_upload_chunks_digest ON registry_upload_chunks (digest);
`, `
-- Environments (issue 24, environment.go): registered, versioned run environments; the spec
-- is the client's JSON, spec_hash the sha256 of its canonical form.
CREATE TABLE environments (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	version      INTEGER NOT NULL,
	spec         TEXT NOT NULL,
	spec_hash    TEXT NOT NULL,
	description  TEXT NOT NULL DEFAULT '',
	tags         TEXT NOT NULL DEFAULT '{}',
	created_by   TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (workspace_id, name, version)
);
CREATE INDEX environments_hash ON environments (workspace_id, spec_hash);
`, `
-- Base images imported into the workspace image registry (issue 20, registry.go): the tag
-- <workspace>/<name>:<tag> they were stored as, what was uploaded, and each workspace's default
-- base of image builds (a tag of its registry or another registry's HOST/REPO:TAG).
CREATE TABLE registry_imports (
	workspace_id INTEGER NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
	repo         TEXT NOT NULL,
	tag          TEXT NOT NULL,
	digest       TEXT NOT NULL,
	size         INTEGER NOT NULL,
	platform     TEXT NOT NULL,
	format       TEXT NOT NULL,
	imported_by  TEXT NOT NULL DEFAULT '',
	imported_at  INTEGER NOT NULL,
	PRIMARY KEY (repo, tag)
);
CREATE INDEX registry_imports_workspace ON registry_imports (workspace_id);
CREATE TABLE workspace_default_bases (
	workspace_id INTEGER PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
	base         TEXT NOT NULL,
	set_by       TEXT NOT NULL DEFAULT '',
	set_at       INTEGER NOT NULL
);
`}

func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var version int
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this atelier (%d): upgrade atelier", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
