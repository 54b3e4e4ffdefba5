package main

import "github.com/atelier-ml/atelier/datastore"

// artifactsHelp tells the operator where the artifact store is (package server opens it).
const artifactsHelp = `The artifact store (--artifacts, env ATELIER_ARTIFACTS) holds every workspace's snapshots,
run outputs and model files, each content once (named by its sha256) for the whole server,
and the workspaces' built-in "default" datastores. It defaults to the data directory; a
bucket makes the server keep only its database and its compute caches on its own disk:
` + datastore.LocationHelp + `
Secrets are read from the environment only, never from the URL or a flag.`
