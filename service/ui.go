package service

import (
	"context"

	"github.com/atelier-ml/atelier"
)

// CallerRole returns the caller's role in a workspace, as the authorize functions see it:
// Owner for an administrator, the member's role for a user, Reader for a run's token of the
// workspace. A workspace the caller may not see is ENOTFOUND. The studio asks it to leave out
// the buttons of writes the caller may not make; the writes themselves are still refused here.
func (s *Accounts) CallerRole(ctx context.Context, workspace string) (atelier.Role, error) {
	return s.role(ctx, workspace)
}
