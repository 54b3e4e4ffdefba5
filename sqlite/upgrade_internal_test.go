package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atelier-ml/atelier"
)

var (
	createTable  = regexp.MustCompile(`CREATE TABLE (\w+)`)
	addColumn    = regexp.MustCompile(`ALTER TABLE (\w+) ADD COLUMN (\w+)`)
	createObject = regexp.MustCompile(`CREATE (?:UNIQUE )?(INDEX|TRIGGER) (\w+)`)
)

// undoLater returns the statements that undo what the migrations after the first n made
// (their tables and added columns), newest first (a table is dropped before those it
// references), so that migrating again from n finds none of it.
func undoLater(n int) []string {
	var stmts []string
	for i := len(migrations) - 1; i >= n; i-- {
		m := migrations[i]
		// Indexes and triggers first: a column one uses cannot be dropped (those of dropped
		// tables go with them).
		for _, match := range createObject.FindAllStringSubmatch(m, -1) {
			stmts = append(stmts, `DROP `+match[1]+` IF EXISTS `+match[2])
		}
		tables := createTable.FindAllStringSubmatch(m, -1)
		for j := len(tables) - 1; j >= 0; j-- {
			stmts = append(stmts, `DROP TABLE `+tables[j][1])
		}
		for _, match := range addColumn.FindAllStringSubmatch(m, -1) {
			stmts = append(stmts, `ALTER TABLE `+match[1]+` DROP COLUMN `+match[2])
		}
	}
	return stmts
}

// TestUpgradeKeepsAdminToken: a data directory from before users and roles (issue 7) keeps its
// administrator token after the migration.
func TestUpgradeKeepsAdminToken(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := &atelier.Token{ID: "tok_admin", Name: "admin", Kind: atelier.PrincipalAdmin, Owner: "admin", Hash: "h4sh", CreatedAt: time.Now()}
	if err := db.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// Roll the schema back to before the users migration, as an older atelier left it.
	var before int
	for i, m := range migrations {
		if strings.Contains(m, "CREATE TABLE users") {
			before = i
		}
	}
	// The tables and columns of later migrations go too, or migrating again would find them.
	drops := undoLater(before + 1)
	for _, stmt := range append(drops, `DROP TABLE audit`, `DROP TABLE members`, `DROP TABLE users`,
		fmt.Sprintf(`PRAGMA user_version = %d`, before)) {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatal(stmt, err)
		}
	}
	db.Close()
	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	defer db.Close()
	got, err := db.FindTokenByHash(ctx, "h4sh")
	if err != nil || got.Kind != atelier.PrincipalAdmin || got.RevokedAt != nil {
		t.Fatalf("the admin token after the upgrade: %+v, %v", got, err)
	}
	if _, err := db.ListUsers(ctx); err != nil {
		t.Errorf("users after the upgrade: %v", err)
	}
}
