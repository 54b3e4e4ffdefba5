package sqlite

// SetPlanLimit sets the number of runs under which a run search reads them all and sorts
// them; below it the search plans of query.go are used, so tests reach them on small fixtures.
func SetPlanLimit(db *DB, n int) { db.planLimit = n }
