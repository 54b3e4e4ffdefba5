package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// benchModelUpload registers a 1 GiB local folder through the real CLI against a real server
// (a fresh one each time, so every byte is uploaded), in two shapes: 16 × 64 MiB and
// 1,000 × 1 MiB (1,000 MiB). The disk's write speed is measured just before each registration,
// in the same conditions, two ways: 1 GiB written in 1 MiB writes and left to the page cache, and
// the same followed by fdatasync (as dd conv=fdatasync). The goal is judged on the faster of the
// two: on the development VM filling fresh page cache is often slower than writing through to
// the disk, so the buffered write alone would flatter the upload. (The server writes with direct
// I/O and no fsync: an acknowledged version survives a crash of the server, as before.)
func benchModelUpload(ctx context.Context, bin string, repeat int) []result {
	work, err := os.MkdirTemp("", "atelier-bench-model-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(work)
	shapes := []struct {
		name        string
		files       int
		size        int64
		description string
	}{
		{"16x64MiB", 16, 64 << 20, "16 × 64 MiB"},
		{"1000x1MiB", 1000, 1 << 20, "1,000 × 1 MiB"},
	}
	for i, s := range shapes {
		dir := filepath.Join(work, s.name)
		for f := range s.files {
			writeFile(filepath.Join(dir, fmt.Sprintf("part-%04d.bin", f)), s.size, uint64(i*100000+f), false)
		}
	}
	speeds := make([][]float64, len(shapes))
	ratios := make([][]float64, len(shapes)) // each registration over the disk's speed just before it
	buffered, synced := make([][]float64, len(shapes)), make([][]float64, len(shapes))
	clientCPU, serverCPU := make([][]float64, len(shapes)), make([][]float64, len(shapes))
	var loads []string
	for r := range repeat {
		loads = append(loads, loadAvg())
		for i, s := range shapes {
			buf, sync := diskWrite(work, false), diskWrite(work, true)
			buffered[i], synced[i] = append(buffered[i], buf), append(synced[i], sync)
			bytes := int64(s.files) * s.size
			d, client, server := registerFolder(ctx, bin, filepath.Join(work, s.name), fmt.Sprintf("m%d", r))
			speed := float64(bytes) / d.Seconds() / 1e6
			speeds[i] = append(speeds[i], speed)
			ratios[i] = append(ratios[i], speed/max(buf, sync))
			gb := float64(bytes) / 1e9
			clientCPU[i] = append(clientCPU[i], client.Seconds()/gb)
			serverCPU[i] = append(serverCPU[i], server.Seconds()/gb)
			fmt.Fprintf(os.Stderr, "model upload %s, round %d: %.0f MB/s (%s; CPU s/GB: client %.2f, server %.2f); disk just before: %.0f MB/s buffered, %.0f MB/s with fdatasync (%.0f %%); load %s\n",
				s.name, r+1, speed, d.Round(time.Millisecond), clientCPU[i][r], serverCPU[i][r], buf, sync, 100*ratios[i][r], loadAvg())
		}
	}
	loads = append(loads, loadAvg())
	var out []result
	for i, s := range shapes {
		m, ratio := median(speeds[i]), median(ratios[i])
		out = append(out, result{
			name: fmt.Sprintf("register a local folder of %s through the CLI (median of %d rounds, fresh server each)", s.description, repeat),
			goal: "≥ 80 % of the disk's write speed",
			measured: fmt.Sprintf("%.0f MB/s (%.0f–%.0f); %.0f %% of the faster disk write just before (%.0f–%.0f %%); CPU per GB: client %.2f s, server %.2f s; disk: %.0f MB/s buffered (%.0f–%.0f), %.0f MB/s with fdatasync (%.0f–%.0f); load %s",
				m, slices.Min(speeds[i]), slices.Max(speeds[i]), 100*ratio, 100*slices.Min(ratios[i]), 100*slices.Max(ratios[i]),
				median(clientCPU[i]), median(serverCPU[i]),
				median(buffered[i]), slices.Min(buffered[i]), slices.Max(buffered[i]), median(synced[i]), slices.Min(synced[i]), slices.Max(synced[i]),
				strings.Join(loads, " → ")),
			met: ratio >= 0.8,
		})
	}
	return out
}

// settle flushes dirty pages and waits a little before a timed write, so that each starts from
// the same state: no writeback of the previous one in flight, and the memory it freed handed
// back to the hypervisor (Linux reports free pages after 2 s on VMs with free page reporting,
// which makes writes into fresh page cache several times slower than into just-freed pages).
func settle() {
	syscall.Sync()
	time.Sleep(3 * time.Second)
}

// registerFolder starts a fresh server, registers dir through the CLI and returns how long the
// CLI took (process start included) and the CPU time the CLI and the server spent on it, which
// the other load on the machine changes much less than the wall time.
func registerFolder(ctx context.Context, bin, dir, name string) (wall, clientCPU, serverCPU time.Duration) {
	srv, err := start(bin)
	if err != nil {
		panic(err)
	}
	defer srv.stop()
	cache, err := os.MkdirTemp("", "atelier-bench-cache-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(cache)
	settle()
	cmd := exec.CommandContext(ctx, bin, "model", "register", "--name", name, "--path", dir)
	cmd.Env = append(os.Environ(), "ATELIER_SERVER="+srv.url, "ATELIER_TOKEN="+srv.token, "XDG_CACHE_HOME="+cache)
	cmd.Stderr = os.Stderr
	cpu0 := processCPU(srv.cmd.Process.Pid)
	t0 := time.Now()
	if out, err := cmd.Output(); err != nil {
		panic(fmt.Sprintf("model register: %v\n%s", err, out))
	}
	wall = time.Since(t0)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), processCPU(srv.cmd.Process.Pid) - cpu0
}

// processCPU returns the user and system time of a running process, from /proc (Linux).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// diskWrite writes 1 GiB in 1 MiB writes next to the benchmark's files, optionally followed by
// fdatasync (as dd conv=fdatasync), and returns MB/s.
func diskWrite(dir string, sync bool) float64 {
	settle()
	p := filepath.Join(dir, "disk-write.bin")
	defer os.Remove(p)
	d := writeFile(p, 1<<30, 42, sync)
	return float64(1<<30) / d.Seconds() / 1e6
}

// writeFile writes size pseudo-random bytes (distinct per seed and per MiB) and returns the time
// of the writes (and of fdatasync when sync is set).
func writeFile(p string, size int64, seed uint64, sync bool) time.Duration {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		panic(err)
	}
	buf := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	rng.Read(buf)
	f, err := os.Create(p)
	if err != nil {
		panic(err)
	}
	t0 := time.Now()
	for off := int64(0); off < size; off += int64(len(buf)) {
		buf[0], buf[1] = byte(off>>20), byte(off>>28) // each MiB differs
		if _, err := f.Write(buf[:min(int64(len(buf)), size-off)]); err != nil {
			panic(err)
		}
	}
	if sync {
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			panic(err)
		}
	}
	d := time.Since(t0)
	if err := f.Close(); err != nil {
		panic(err)
	}
	return d
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
