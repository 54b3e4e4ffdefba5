package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func probe() Capabilities {
	var c Capabilities
	if v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION); errno == 0 {
		c.Landlock = int(v)
	}
	// A mount namespace needs CAP_SYS_ADMIN. (Trying one would take a thread of this process
	// into it, and that thread would have to end: the children it had started would get their
	// parent-death signal.)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if os.Geteuid() == 0 && unix.Capget(&hdr, &data[0]) == nil {
		c.Namespace = data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
	}
	return c
}

func prepare(cmd *exec.Cmd, caps Capabilities) error {
	if caps.Namespace {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNS
	}
	return nil
}

// Main applies the policy the server passed and executes the confined program in place of
// this process. It returns at once in any process not started by a Launcher: call it first in
// main (and in TestMain of tests that start confined processes).
func Main() {
	raw, ok := os.LookupEnv(envSpec)
	if !ok {
		return
	}
	// Credentials and the Landlock domain belong to a thread: everything happens on this one,
	// and it is the one that executes the program.
	runtime.LockOSThread()
	var s spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fail("reading the sandbox specification: %v", err)
	}
	os.Unsetenv(envSpec)
	if s.Namespace {
		if err := mountView(s); err != nil {
			fail("%v", err)
		}
	}
	if s.UID >= 0 {
		if err := becomeUser(s.UID, s.GID); err != nil {
			fail("%v", err)
		}
	} else if err := dropCapabilities(); err != nil {
		fail("%v", err)
	}
	if s.Pdeathsig {
		// A change of user clears the parent-death signal: set it again.
		unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
		if os.Getppid() == 1 {
			os.Exit(1) // the server died meanwhile
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fail("setting no_new_privs: %v", err)
	}
	if s.Landlock > 0 {
		if err := restrict(s); err != nil {
			fail("%v", err)
		}
	}
	if err := unix.Chdir(s.Dir); err != nil {
		fail("entering %s: %v", s.Dir, err)
	}
	err := unix.Exec(s.Argv[0], s.Argv, os.Environ())
	if err == unix.ENOENT || err == unix.EACCES {
		fail("starting %s: %v: the program is hidden from confined processes, or not theirs to read (an operator makes a path readable to runs with --run-readable)", s.Argv[0], err)
	}
	fail("starting %s: %v", s.Argv[0], err)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "atelier sandbox: "+format+"\n", args...)
	os.Exit(126)
}

// mountView covers the hidden paths with empty read-only tmpfs and binds the granted paths
// back into them. The process is in a mount namespace of its own (CLONE_NEWNS).
func mountView(s spec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mounts private: %v", err)
	}
	type grant struct {
		path string
		fd   int
		ro   bool
	}
	hidden := func(p string) bool {
		for _, h := range s.Hide {
			if within(p, h) {
				return true
			}
		}
		return false
	}
	// Granted paths inside hidden ones are opened before they are covered, then bound back
	// from the open descriptor.
	var grants []grant
	for i, list := range [][]string{s.ReadWrite, s.ReadOnly} {
		for _, p := range list {
			if !hidden(p) {
				continue
			}
			fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // nothing to grant
			}
			grants = append(grants, grant{path: p, fd: fd, ro: i == 1})
		}
	}
	sort.Slice(grants, func(i, j int) bool { return len(grants[i].path) < len(grants[j].path) })
	hide := slices.Clone(s.Hide)
	sort.Strings(hide) // a parent before its children
	var covered []string
	for _, h := range hide {
		if slices.ContainsFunc(covered, func(c string) bool { return within(h, c) }) {
			continue // inside a covered one already
		}
		fi, err := os.Lstat(h)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			if err := unix.Mount("tmpfs", h, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
				return fmt.Errorf("hiding %s: %v", h, err)
			}
			covered = append(covered, h)
		} else if err := unix.Mount("/dev/null", h, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("hiding %s: %v", h, err)
		}
	}
	var bound []string
	for _, g := range grants {
		if slices.ContainsFunc(bound, func(b string) bool { return within(g.path, b) }) {
			continue // inside a granted tree already
		}
		var st unix.Stat_t
		if err := unix.Fstat(g.fd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := os.MkdirAll(g.path, 0o755); err != nil {
				return fmt.Errorf("granting %s: %v", g.path, err)
			}
		} else {
			os.MkdirAll(filepath.Dir(g.path), 0o755)
			if f, err := os.OpenFile(g.path, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
		}
		src := "/proc/self/fd/" + strconv.Itoa(g.fd)
		if err := unix.Mount(src, g.path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("granting %s: %v", g.path, err)
		}
		if g.ro {
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
			if err := unix.MountSetattr(-1, g.path, unix.AT_RECURSIVE, &attr); err != nil {
				return fmt.Errorf("granting %s read-only: %v", g.path, err)
			}
		}
		unix.Close(g.fd)
		bound = append(bound, g.path)
	}
	for _, c := range covered {
		if err := unix.Mount("", c, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("hiding %s: %v", c, err)
		}
	}
	return nil
}

// becomeUser drops to uid and gid (and no supplementary groups) on this thread only: the
// program is executed from it. A change away from root also clears every capability.
func becomeUser(uid, gid int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("dropping groups: %v", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("becoming group %d: %v", gid, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("becoming user %d: %v", uid, e)
	}
	return nil
}

// dropCapabilities leaves a process that keeps the server's user (root, when the operator
// chose so) without any capability: it can no more undo its mounts, trace or override file
// permissions.
func dropCapabilities() error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL && err != unix.EPERM {
			return fmt.Errorf("dropping capability %d: %v", c, err)
		}
	}
	unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("dropping capabilities: %v", err)
	}
	return nil
}

// Landlock access rights (linux/landlock.h), by the ABI version that introduced them.
const (
	llExecute    = 1 << 0
	llWriteFile  = 1 << 1
	llReadFile   = 1 << 2
	llReadDir    = 1 << 3
	llRemoveDir  = 1 << 4
	llRemoveFile = 1 << 5
	llMakeChar   = 1 << 6
	llMakeDir    = 1 << 7
	llMakeReg    = 1 << 8
	llMakeSock   = 1 << 9
	llMakeFifo   = 1 << 10
	llMakeBlock  = 1 << 11
	llMakeSym    = 1 << 12
	llRefer      = 1 << 13 // ABI 2
	llTruncate   = 1 << 14 // ABI 3
	llIoctlDev   = 1 << 15 // ABI 5

	llFileRights = llExecute | llWriteFile | llReadFile | llTruncate | llIoctlDev
	llRead       = llExecute | llReadFile | llReadDir | llIoctlDev

	scopeAbstractUnix = 1 << 0 // ABI 6
	scopeSignal       = 1 << 1 // ABI 6
)

func handledRights(abi int) uint64 {
	r := uint64(1<<13 - 1)
	if abi >= 2 {
		r |= llRefer
	}
	if abi >= 3 {
		r |= llTruncate
	}
	if abi >= 5 {
		r |= llIoctlDev
	}
	return r
}

// writableRoots are the system's directories every process may write to.
var writableRoots = []string{"/tmp", "/var/tmp", "/dev"}

type rule struct {
	path   string
	rights uint64
}

// rules lists the Landlock rules of a policy: read and execute everywhere but the hidden
// paths, writes in the temporary directories (but the hidden paths), and the grants. The
// hidden paths are left out by granting their ancestors' other entries one by one.
func rules(s spec) []rule {
	var out []rule
	out = append(out, around("/", s.Hide, llRead)...)
	for _, w := range writableRoots {
		if slices.ContainsFunc(s.Hide, func(h string) bool { return within(w, h) }) {
			continue
		}
		if slices.ContainsFunc(s.Hide, func(h string) bool { return within(h, w) }) {
			out = append(out, around(w, s.Hide, ^uint64(0))...)
		} else {
			out = append(out, rule{w, ^uint64(0)})
		}
	}
	for _, p := range s.ReadOnly {
		out = append(out, rule{p, llRead})
	}
	for _, p := range s.ReadWrite {
		out = append(out, rule{p, ^uint64(0)})
	}
	return out
}

// around returns rules granting rights on dir's whole tree except the hidden paths in it.
func around(dir string, hide []string, rights uint64) []rule {
	if slices.Contains(hide, dir) {
		return nil
	}
	if !slices.ContainsFunc(hide, func(h string) bool { return within(h, dir) }) {
		return []rule{{dir, rights}}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []rule
	for _, e := range entries {
		if e.Type()&os.ModeSymlink != 0 {
			continue // what a link reaches is ruled where it is
		}
		out = append(out, around(filepath.Join(dir, e.Name()), hide, rights)...)
	}
	return out
}

type rulesetAttr struct {
	handledFS  uint64
	handledNet uint64
	scoped     uint64
}

type pathBeneathAttr struct {
	allowed  uint64
	parentFD int32
}

func restrict(s spec) error {
	handled := handledRights(s.Landlock)
	attr := rulesetAttr{handledFS: handled}
	size := unsafe.Sizeof(attr.handledFS) * 2 // the first ABI's structure
	if s.Landlock >= 6 {
		attr.scoped = scopeAbstractUnix | scopeSignal
		size = unsafe.Sizeof(attr)
	}
	rs, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return fmt.Errorf("creating the Landlock ruleset: %v", errno)
	}
	defer unix.Close(int(rs))
	for _, r := range rules(s) {
		fd, err := unix.Open(r.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // gone meanwhile: nothing to grant
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		allowed := r.rights & handled
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			allowed &= llFileRights
		}
		pb := pathBeneathAttr{allowed: allowed, parentFD: int32(fd)}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(rs), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&pb)), 0, 0, 0)
		unix.Close(fd)
		if errno != 0 && errno != unix.EINVAL {
			return fmt.Errorf("granting %s in the Landlock ruleset: %v", r.path, errno)
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, rs, 0, 0); errno != 0 {
		return fmt.Errorf("entering the Landlock domain: %v", errno)
	}
	return nil
}
