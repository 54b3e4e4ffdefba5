package api

// The parts of the OpenAPI document that are neither a route nor a Go type: info, tags, the
// security scheme, and the parameters and responses operations share by reference (opDoc.Params
// names a parameter; opDoc.Errors names responses through errorResponse).

func openapiInfo() S {
	return S{
		"description": "The REST API of atelier, a self-hosted machine-learning workspace: workspaces, experiments, runs with their params, tags, metrics, files and logs, code snapshots, long-running activities and a live event stream.\n\n**Authentication.** Every endpoint except health, login and this document needs `Authorization: Bearer <token>` (or the browser session cookie set by login, with the X-CSRF-Token header on writes): an administrator's token, a user's token, or a run's token (scoped to its workspace, and to changing its own run and its children).\n\n**Authorization.** A user sees only the workspaces they are a member of: another workspace, and everything in it, is a 404. Readers read; Contributors also change runs, models and the rest (403 for a Reader); Owners also manage members, read the audit log and may delete the workspace. Server administrators may do everything.\n\n**Errors.** Every error is a JSON body `{\"code\": ..., \"message\": ...}` (components/schemas/Error). The code maps to one HTTP status: invalid 400, unauthorized 401, forbidden 403, not_found 404, method_not_allowed 405 (with an Allow header listing the methods the path is served with), conflict 409, too_large 413, too_many 429, internal 500, unavailable 503, storage_full 507 (the server's disk is full: nothing was stored). A client error is never a 500.\n\n**JSON bodies** are decoded strictly: unknown fields, trailing data, a missing required field, null where the schema does not say nullable (a body of null included) and bodies over 64 MiB (413) are refused with a message naming what was wrong.\n\n**Searching runs.** filter and order_by use a small query language described in docs/filter.md, e.g. `metrics.rmse < 60 and params.alpha = '0.1' and tags.team = 'vision'` ordered by `metrics.rmse asc, created_at desc`.",
		"title":       "atelier",
		"version":     "0.1.0",
	}
}

func openapiTags() []any {
	return []any{
		S{"description": "Health and this document; public.", "name": "system"},
		S{"description": "Top-level containers.", "name": "workspaces"},
		S{"description": "Named groups of runs.", "name": "experiments"},
		S{"description": "Runs, their lifecycle, params, tags and properties.", "name": "runs"},
		S{"description": "Scalar series and non-scalar records of runs.", "name": "metrics"},
		S{"description": "Output files of runs.", "name": "files"},
		S{"description": "Logs appended while a run is live, readable as a stream.", "name": "logs"},
		S{"description": "Content-addressed code snapshots and their objects.", "name": "snapshots"},
		S{"description": "Long-running operations and their progress.", "name": "activities"},
		S{"description": "Live changes as Server-Sent Events.", "name": "events"},
		S{"description": "Compute targets and their queues.", "name": "compute"},
		S{
			"description": "The model registry: named, versioned files with metadata, lineage and aliases.",
			"name":        "models",
		},
		S{"description": "Users, API tokens and browser sessions.", "name": "auth"},
		S{"description": "Who may use a workspace, and with which role.", "name": "members"},
		S{"description": "The record of every write.", "name": "audit"},
		S{
			"description": "Named storage (a server folder, S3, Azure Blob, GCS) and its files.",
			"name":        "datastores",
		},
		S{
			"description": "The key vault: encrypted secrets that runs receive as environment variables. Values are write-only.",
			"name":        "secrets",
		},
		S{
			"description": "Registered models and a scoring script (score.py with init() and run()) built as OCI images into the workspace's image registry (served under /v2/), where an image is <workspace>/<name>:<version>.",
			"name":        "images",
		},
		S{
			"description": "Web services: images deployed as authenticated, load-balanced, autoscaled scoring endpoints (served under /services/{workspace}/{name}/).",
			"name":        "services",
		},
		S{
			"description": "Registered, versioned references to files in datastores (Azure ML v1's datasets), and the runs that consumed them.",
			"name":        "datasets",
		},
		S{
			"description": "Registered, versioned run environments (Azure ML v1's environments), identified by the hash of their definition.",
			"name":        "environments",
		},
	}
}

func openapiSecuritySchemes() S {
	return S{
		"bearerAuth": S{
			"description": "An API token: an administrator's, or a run's (scoped to its workspace and run tree). A missing or invalid token is a 401 with `WWW-Authenticate: Bearer realm=\"atelier\"`.",
			"scheme":      "bearer",
			"type":        "http",
		},
	}
}

func openapiParameters() S {
	return S{
		"Activity": S{
			"description": "The activity's id.",
			"in":          "path",
			"name":        "activity",
			"required":    true,
			"schema":      S{"type": "string"},
		},
		"Compute": S{
			"description": "The compute target's name; every workspace has the built-in \"local\".",
			"example":     "local",
			"in":          "path",
			"name":        "compute",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", "type": "string"},
		},
		"ContentSha256": S{
			"description": "Optional sha256 of the body in lowercase hex. When given, the server checks the content against it and stores nothing if they differ (400).",
			"in":          "header",
			"name":        "X-Content-Sha256",
			"schema": S{
				"description": "sha256 of the content, 64 lowercase hex characters.",
				"pattern":     "^[0-9a-f]{64}$",
				"type":        "string",
			},
		},
		"Dataset": S{
			"description": "The dataset's name: 1-255 letters, digits, '.', '_', '-' or spaces (as Azure ML allows: \"diabetes dataset\"), starting with a letter or digit and not ending with a space.",
			"example":     "diabetes",
			"in":          "path",
			"name":        "dataset",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z0-9]([A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?$", "type": "string"},
		},
		"DatasetVersion": S{
			"description": "A version number or `latest`.",
			"example":     "2",
			"in":          "path",
			"name":        "version",
			"required":    true,
			"schema":      S{"pattern": "^(?:[1-9][0-9]{0,17}|latest)$", "type": "string"},
		},
		"Datastore": S{
			"description": "The datastore's name; every workspace has the built-in \"default\".",
			"example":     "default",
			"in":          "path",
			"name":        "datastore",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", "type": "string"},
		},
		"DatastoreFilePath": S{
			"description": "The file's path in the datastore (under its prefix): relative, slash-separated and clean; each element URL-escaped.",
			"in":          "path",
			"name":        "path",
			"required":    true,
			"schema": S{
				"maxLength": 1024,
				"minLength": 1,
				"pattern":   "^(?:[^/.\\\\\\x00](?:[^/\\\\\\x00:][^/\\\\\\x00]{0,253})?|\\.[^/.\\\\\\x00:][^/\\\\\\x00]{0,253}|\\.\\.[^/\\\\\\x00]{1,253})(?:/(?:[^/.\\\\\\x00](?:[^/\\\\\\x00][^/\\\\\\x00]{0,253})?|\\.[^/.\\\\\\x00][^/\\\\\\x00]{0,253}|\\.\\.[^/\\\\\\x00]{1,253}))*$",
				"type":      "string",
			},
		},
		"Digest": S{
			"description": "The sha256 of the object's content, 64 lowercase hex characters.",
			"in":          "path",
			"name":        "digest",
			"required":    true,
			"schema": S{
				"description": "sha256 of the content, 64 lowercase hex characters.",
				"pattern":     "^[0-9a-f]{64}$",
				"type":        "string",
			},
		},
		"Environment": S{
			"description": "The environment's name: 1-255 letters, digits, '.', '_' or '-', starting with a letter or digit.",
			"example":     "sklearn-env",
			"in":          "path",
			"name":        "environment",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$", "type": "string"},
		},
		"Experiment": S{
			"description": "The experiment's name (URL-escaped; it may hold spaces but never '/').",
			"in":          "path",
			"name":        "experiment",
			"required":    true,
			"schema":      S{"type": "string"},
		},
		"FilePath": S{
			"description": "The file's path inside the run: relative, slash-separated and clean (no empty, '.' or '..' elements), at most 1024 bytes. It is the rest of the URL and may contain slashes, e.g. `outputs/model/weights.pt`; escape each element but not the slashes between them.",
			"example":     "outputs/model.pkl",
			"in":          "path",
			"name":        "path",
			"required":    true,
			"schema": S{
				"maxLength": 1024,
				"minLength": 1,
				"pattern":   "^(?:[^/.\\\\\\x00](?:[^/\\\\\\x00:][^/\\\\\\x00]*)?|\\.[^/.\\\\\\x00:][^/\\\\\\x00]*|\\.\\.[^/\\\\\\x00]+)(?:/(?:[^/.\\\\\\x00][^/\\\\\\x00]*|\\.[^/.\\\\\\x00][^/\\\\\\x00]*|\\.\\.[^/\\\\\\x00]+))*$",
				"type":      "string",
			},
		},
		"Image": S{
			"description": "The image: name:version, or a bare name for its latest version. Names are registry repository names: lowercase letters and digits, separated by single '.', '_' or '-'.",
			"example":     "diabetes-svc:1",
			"in":          "path",
			"name":        "image",
			"required":    true,
			"schema":      S{"pattern": "^[a-z0-9]+([._-][a-z0-9]+)*(:[1-9][0-9]*)?$", "type": "string"},
		},
		"Limit": S{
			"description": "The page size, at most 10000; absent or 0 means 100.",
			"in":          "query",
			"name":        "limit",
			"schema":      S{"maximum": 10000, "minimum": 0, "type": "integer"},
		},
		"LocalFile": S{
			"description": "Set (to 1) on a request sent over the server's Unix socket that passes the file as an open descriptor (SCM_RIGHTS, with the request's first bytes) instead of in the body: a regular file open for reading (upload) or for writing, not appending (download). The server copies between it and the datastore itself. Over TCP, or without a descriptor, the request is refused (400).",
			"in":          "header",
			"name":        "X-Atelier-Local-File",
			"required":    false,
			"schema":      S{"type": "string"},
		},
		"LogPath": S{
			"description": "The log's path inside the run, conventionally under logs/. It is the rest of the URL and may contain slashes, e.g. `azureml-logs/70_driver_log.txt`; escape each element but not the slashes between them.",
			"example":     "std_log.txt",
			"in":          "path",
			"name":        "path",
			"required":    true,
			"schema": S{
				"maxLength": 1024,
				"minLength": 1,
				"pattern":   "^(?:[^/.\\\\\\x00](?:[^/\\\\\\x00:][^/\\\\\\x00]*)?|\\.[^/.\\\\\\x00:][^/\\\\\\x00]*|\\.\\.[^/\\\\\\x00]+)(?:/(?:[^/.\\\\\\x00][^/\\\\\\x00]*|\\.[^/.\\\\\\x00][^/\\\\\\x00]*|\\.\\.[^/\\\\\\x00]+))*$",
				"type":      "string",
			},
		},
		"MetricName": S{
			"description": "The metric's name.",
			"in":          "query",
			"name":        "name",
			"required":    true,
			"schema":      S{"minLength": 1, "type": "string"},
		},
		"Model": S{
			"description": "The model's name: 1-255 letters, digits, '.', '_', '-' or spaces, starting with a letter or digit and not ending with a space.",
			"example":     "diabetes",
			"in":          "path",
			"name":        "model",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z0-9](?:[A-Za-z0-9._ -]{0,253}[A-Za-z0-9._-])?$", "type": "string"},
		},
		"ModelAlias": S{
			"description": "The alias: 1-128 letters, digits, '.', '_' or '-', starting with a letter; `latest` is reserved.",
			"example":     "production",
			"in":          "path",
			"name":        "alias",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z][A-Za-z0-9._-]{0,127}$", "type": "string"},
		},
		"ModelFilePath": S{
			"description": "The file's path inside the model version (slashes kept; escape each element).",
			"example":     "model/model.pkl",
			"in":          "path",
			"name":        "path",
			"required":    true,
			"schema": S{
				"maxLength": 1024,
				"minLength": 1,
				"pattern":   "^(?:[^/.\\\\\\x00](?:[^/\\\\\\x00:][^/\\\\\\x00]*)?|\\.[^/.\\\\\\x00:][^/\\\\\\x00]*|\\.\\.[^/\\\\\\x00]+)(?:/(?:[^/.\\\\\\x00][^/\\\\\\x00]*|\\.[^/.\\\\\\x00][^/\\\\\\x00]*|\\.\\.[^/\\\\\\x00]+))*$",
				"type":      "string",
			},
		},
		"ModelVersion": S{
			"description": "A version number, `latest`, or an alias (so name@alias works wherever a version does).",
			"example":     "3",
			"in":          "path",
			"name":        "version",
			"required":    true,
			"schema":      S{"pattern": "^(?:[1-9][0-9]{0,17}|[A-Za-z][A-Za-z0-9._-]{0,127})$", "type": "string"},
		},
		"PageToken": S{
			"description": "The next_page_token of the previous page.",
			"in":          "query",
			"name":        "page_token",
			"schema":      S{"type": "string"},
		},
		"Run": S{
			"description": "The run's id.",
			"in":          "path",
			"name":        "run",
			"required":    true,
			"schema":      S{"type": "string"},
		},
		"Secret": S{
			"description": "The secret's name, which is also the environment variable a run receives it in.",
			"example":     "WANDB_API_KEY",
			"in":          "path",
			"name":        "secret",
			"required":    true,
			"schema":      S{"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$", "type": "string"},
		},
		"Service": S{
			"description": "The web service's name: 3-32 lowercase letters, digits and '-', starting with a letter.",
			"example":     "diabetes",
			"in":          "path",
			"name":        "service",
			"required":    true,
			"schema":      S{"pattern": "^[a-z][a-z0-9-]{1,30}[a-z0-9]$", "type": "string"},
		},
		"Snapshot": S{
			"description": "The snapshot's id.",
			"in":          "path",
			"name":        "snapshot",
			"required":    true,
			"schema":      S{"pattern": "^[0-9a-f]{64}$", "type": "string"},
		},
		"TagKey": S{
			"description": "The tag's name (URL-escaped).",
			"in":          "path",
			"name":        "key",
			"required":    true,
			"schema":      S{"type": "string"},
		},
		"Token": S{
			"description": "A token id (tok_...), never its secret.",
			"in":          "path",
			"name":        "token",
			"required":    true,
			"schema":      S{"type": "string"},
		},
		"User": S{
			"description": "A user name.",
			"in":          "path",
			"name":        "user",
			"required":    true,
			"schema":      S{"type": "string"},
		},
		"Workspace": S{
			"description": "The workspace's name.",
			"example":     "default",
			"in":          "path",
			"name":        "workspace",
			"required":    true,
			"schema":      S{"type": "string"},
		},
	}
}

func openapiResponses() S {
	return S{
		"BadRequest": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "The request is malformed or fails validation (code invalid); the message says which field or parameter and why.",
		},
		"Conflict": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "The request conflicts with the current state (code conflict).",
		},
		"Error": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "Any other error: internal (500, details are logged, not returned) or unavailable (503, the server is shutting down or overloaded; retry later).",
		},
		"Forbidden": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "The token is valid but may not do this (code forbidden): for instance a run's token changing another run, or a Reader changing a run.",
		},
		"NotFound": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "The workspace, or the thing named in the path, does not exist or is not visible to the caller (code not_found).",
		},
		"StorageFull": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "The server's storage (its disk, or its quota) is full (code storage_full): nothing was stored. Retrying does not help until its administrator frees space; GET /api/v1/health says degraded meanwhile.",
		},
		"TooLarge": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "The body exceeds a limit (code too_large).",
		},
		"Unauthorized": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "No valid bearer token (code unauthorized).",
			"headers": S{
				"WWW-Authenticate": S{"description": "`Bearer realm=\"atelier\"`", "schema": S{"type": "string"}},
			},
		},
		"Unavailable": S{
			"content":     S{"application/json": S{"schema": S{"$ref": "#/components/schemas/Error"}}},
			"description": "A datastore's storage cannot be reached or failed (code unavailable); retry later.",
		},
	}
}
