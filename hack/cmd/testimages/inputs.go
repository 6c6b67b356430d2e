package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

//go:embed csrc/*.c
var csrc embed.FS

var aptUpdateOnce sync.Once

// deb returns the directory where Debian package pkg (amd64, the candidate
// version at first download) is extracted. The .deb is downloaded once with
// `apt-get download` into <cache>/debs and kept: later runs reuse it, so the
// images stay byte-identical even when the archive moves on.
func deb(cacheDir, pkg string) (string, error) {
	debDir := filepath.Join(cacheDir, "debs")
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return "", err
	}
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(debDir, pkg+"_*_amd64.deb"))
		sort.Strings(m)
		if len(m) == 0 {
			return ""
		}
		return m[len(m)-1]
	}
	file := find()
	if file == "" {
		download := func() error {
			cmd := exec.Command("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg+":amd64")
			cmd.Dir = debDir
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("apt-get download %s: %v\n%s", pkg, err, out)
			}
			return nil
		}
		if err := download(); err != nil {
			// Typically: no package lists yet on a fresh machine.
			aptUpdateOnce.Do(func() {
				logf("apt-get download %s failed; running apt-get update", pkg)
				cmd := exec.Command("apt-get", "update", "-q")
				cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
				_ = cmd.Run()
			})
			if err := download(); err != nil {
				return "", err
			}
		}
		if file = find(); file == "" {
			return "", fmt.Errorf("apt-get download %s produced no %s_*_amd64.deb", pkg, pkg)
		}
	}
	root := filepath.Join(cacheDir, "deb-root", strings.TrimSuffix(filepath.Base(file), ".deb"))
	if _, err := os.Stat(root); err == nil {
		return root, nil
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("dpkg-deb", "-x", file, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %v\n%s", file, err, out)
	}
	return root, os.Rename(tmp, root)
}

// debVersion returns "pkg version" for the cached .deb (for the README/report).
func debVersion(root string) string {
	base := filepath.Base(root) // name_version_arch
	parts := strings.Split(base, "_")
	if len(parts) < 3 {
		return base
	}
	v := strings.ReplaceAll(parts[1], "%3a", ":")
	return parts[0] + " " + v
}

// cbin compiles csrc/<name>.c statically with gcc and returns the binary
// path. Binaries are cached by source+flags hash.
func cbin(cacheDir, name string, defines ...string) (string, error) {
	src, err := csrc.ReadFile("csrc/" + name + ".c")
	if err != nil {
		return "", err
	}
	args := append([]string{"-static", "-Os", "-s", "-Wall", "-fno-ident"}, defines...)
	h := sha256.New()
	h.Write(src)
	h.Write([]byte(strings.Join(args, "\x00")))
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(cacheDir, "bin", name+"-"+sum)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp("", "testimages-cc-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	cfile := filepath.Join(work, name+".c")
	if err := os.WriteFile(cfile, src, 0o644); err != nil {
		return "", err
	}
	tmp := out + ".tmp"
	cmd := exec.Command("gcc", append(append(args, "-o", tmp), cfile)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gcc %s: %v\n%s(static linking needs libc6-dev)", name, err, stderr.String())
	}
	return out, os.Rename(tmp, out)
}

// busyboxApplets lists the applets of the busybox binary at bin.
func busyboxApplets(bin string) ([]string, error) {
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bin, err)
	}
	var list []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			list = append(list, a)
		}
	}
	sort.Strings(list)
	return list, nil
}
