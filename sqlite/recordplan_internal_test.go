package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
	"github.com/atelier-ml/atelier/storetest"
)

// TestRecordSearchPlans runs the store suite with searches of experiments, models, versions
// and logged models always walked in their order, then always driven by their tag and param
// tests (recordQuery.few): the two plans must give the same answers.
func TestRecordSearchPlans(t *testing.T) {
	for name, plan := range map[string]int32{"walk": planWalk, "drive": planDrive} {
		t.Run(name, func(t *testing.T) {
			recordPlan.Store(plan)
			defer recordPlan.Store(0)
			storetest.TestStore(t, func(t *testing.T, now func() time.Time) atelier.Store {
				db, err := Open(context.Background(), filepath.Join(t.TempDir(), "atelier.db"), Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				if now != nil {
					db.Now = now
				}
				return db
			})
		})
	}
}
