// Package sandbox confines the processes atelier starts for users' code (a run's script, the
// installer that builds its environment) so that they cannot read or change the server's data:
// its admin token, master key, database, object store, socket and other runs' directories.
//
// The server starts such a process through itself: the command is rewritten to run the
// server's binary, which (in Main, before anything else) applies the policy to its own
// process and then executes the real program in place. The layers, each used where the
// machine allows it:
//
//   - a mount namespace (when the server has CAP_SYS_ADMIN, as root): the hidden directories
//     are covered with empty read-only tmpfs mounts, and only the paths granted to the process
//     are bound back into them, read-only or writable;
//   - another user (when the server runs as root and a user is configured, --run-as): the
//     process has no capabilities and owns none of the server's files;
//   - Landlock (Linux 5.13 and later): the process can read and execute everything except the
//     hidden directories, write only to the granted paths and the system's temporary
//     directories, and cannot signal, trace or read the /proc files of processes outside its
//     domain (the server's environment and root among them);
//   - no_new_privs: no set-user-ID program gives it privileges back.
//
// Where none is available (not root, no Landlock) the isolation is "none", and the server says
// so: a submitted script then can do whatever the server's user can.
package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// envSpec carries the policy to the re-executed binary; it is removed before the real
// program starts.
const envSpec = "ATELIER_SANDBOX_SPEC"

// Policy says what a confined process may see.
type Policy struct {
	// Hide lists directories (or files) the process must not see nor reach, however it
	// names them (links, /proc/PID/root, relative paths).
	Hide []string
	// ReadOnly and ReadWrite grant paths, which may lie inside hidden directories.
	ReadOnly  []string
	ReadWrite []string
}

// Launcher starts confined processes.
type Launcher struct {
	// Path and Arg0 are the binary to re-execute and the name to give it: a binary whose main
	// calls Main first.
	Path, Arg0 string
	// UID and GID are the user the process runs as when the server is root (-1: keep the
	// server's). Name is its name, for messages.
	UID, GID int
	User     string

	caps Capabilities
}

// Capabilities is what this machine lets a Launcher use.
type Capabilities struct {
	Namespace bool // mount namespaces (CAP_SYS_ADMIN)
	User      bool // a change of user (root)
	Landlock  int  // the Landlock ABI version, 0 when there is none
}

// String names the layers in use, "none" when there is none.
func (c Capabilities) String() string {
	var parts []string
	if c.User {
		parts = append(parts, "user")
	}
	if c.Namespace {
		parts = append(parts, "namespace")
	}
	if c.Landlock > 0 {
		parts = append(parts, fmt.Sprintf("landlock-v%d", c.Landlock))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// New probes what confinement this machine allows and returns a Launcher using all of it. path
// is the binary to re-execute; runAs names the user to run as when the server is root ("" to
// keep the server's user).
func New(path, arg0, runAs string) (*Launcher, error) {
	l := &Launcher{Path: path, Arg0: arg0, UID: -1, GID: -1}
	l.caps = probe()
	if runAs != "" && l.caps.Namespace {
		uid, gid, err := lookupUser(runAs)
		if err != nil {
			return nil, err
		}
		if uid != 0 {
			l.UID, l.GID, l.User = uid, gid, runAs
			l.caps.User = true
		}
	}
	return l, nil
}

// Isolation names the layers the launcher applies ("none" when there is none).
func (l *Launcher) Isolation() string {
	if l == nil {
		return "none"
	}
	return l.caps.String()
}

// Owner is the user a confined process runs as: the files it must write are handed to it.
// ok is false when processes run as the server's user.
func (l *Launcher) Owner() (uid, gid int, ok bool) {
	if l == nil || !l.caps.User {
		return 0, 0, false
	}
	return l.UID, l.GID, true
}

// spec is what the re-executed binary applies.
type spec struct {
	Argv      []string `json:"argv"`
	Dir       string   `json:"dir"`
	Hide      []string `json:"hide"`
	ReadOnly  []string `json:"ro"`
	ReadWrite []string `json:"rw"`
	Namespace bool     `json:"ns"`
	UID       int      `json:"uid"`
	GID       int      `json:"gid"`
	Landlock  int      `json:"landlock"`
	Pdeathsig bool     `json:"pdeathsig"`
}

// Wrap rewrites cmd (not yet started, with an absolute Path, its Dir, Env and SysProcAttr
// set) so that it runs confined by p. A nil Launcher leaves cmd as it is.
func (l *Launcher) Wrap(cmd *exec.Cmd, p Policy) error {
	if l == nil || l.caps.String() == "none" {
		return nil
	}
	clean := func(list []string) ([]string, error) {
		out := make([]string, 0, len(list))
		for _, s := range list {
			if s == "" {
				continue
			}
			abs, err := filepath.Abs(s)
			if err != nil {
				return nil, err
			}
			out = append(out, abs)
		}
		return out, nil
	}
	s := spec{Argv: append([]string{cmd.Path}, cmd.Args[1:]...), Dir: cmd.Dir, Namespace: l.caps.Namespace,
		UID: l.UID, GID: l.GID, Landlock: l.caps.Landlock}
	var err error
	if s.Hide, err = clean(p.Hide); err != nil {
		return err
	}
	if s.ReadOnly, err = clean(p.ReadOnly); err != nil {
		return err
	}
	if s.ReadWrite, err = clean(p.ReadWrite); err != nil {
		return err
	}
	if s.Dir, err = filepath.Abs(cmd.Dir); err != nil {
		return err
	}
	if !l.caps.User {
		s.UID, s.GID = -1, -1
	} else {
		// Another user must be able to walk to its grants: a hidden directory inside one
		// it cannot search (a home directory, a private temporary one) is hidden from there,
		// the covering tmpfs being searchable.
		for i, h := range s.Hide {
			s.Hide[i] = unsearchableRoot(h)
		}
		// Likewise a grant it could not reach (an interpreter in the server's home) is
		// reached through a covering tmpfs.
		for _, g := range append(slices.Clone(s.ReadOnly), s.ReadWrite...) {
			if r := unsearchableRoot(g); r != g && !slices.ContainsFunc(s.Hide, func(h string) bool { return within(g, h) }) {
				s.Hide = append(s.Hide, r)
			}
		}
	}
	s.Pdeathsig = true // the program ends with the server, as the server's other children do
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, envSpec+"=") })
	cmd.Env = append(env, envSpec+"="+string(b))
	cmd.Path = l.Path
	cmd.Args = []string{l.Arg0}
	return prepare(cmd, l.caps)
}

// lookupUser finds a user by name or number ("uid" or "uid:gid").
func lookupUser(name string) (uid, gid int, err error) {
	if u, g, ok := strings.Cut(name, ":"); ok {
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if err1 == nil && err2 == nil && uid >= 0 && gid >= 0 {
			return uid, gid, nil
		}
		return 0, 0, fmt.Errorf("--run-as %q: want a user name, a uid or uid:gid", name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("--run-as %q: no such user on this machine", name)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// unsearchableRoot returns the outermost directory on the way to p that other users cannot
// search, or p when they can search them all.
func unsearchableRoot(p string) string {
	for dir := p; ; {
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
		if dir == "/" {
			break
		}
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o001 == 0 {
			p = dir // an outer one may hide it too: keep looking
		}
	}
	return p
}
