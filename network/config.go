package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/crisp-runtime/crisp/internal/timeouts"
	"k8s.io/klog/v2"
)

// confExtensions are the file kinds considered in the configuration
// directory, as containerd and CRI-O do.
var confExtensions = []string{".conf", ".conflist", ".json"}

// confState caches the selected configuration together with a fingerprint
// of what it was derived from, so that Ready (called by the kubelet every few
// seconds) costs a ReadDir and a few stats unless something changed.
type confState struct {
	mu          sync.Mutex
	dir         string
	fingerprint string
	scanned     bool
	loaded      *loadedConf
	err         error
}

type loadedConf struct {
	list *libcni.NetworkConfigList
	file string
}

// current returns the selected configuration, re-scanning the configuration
// directory first when it or the plugin directories changed.
func (m *Manager) current() (*loadedConf, error) {
	s := &m.conf
	s.mu.Lock()
	defer s.mu.Unlock()

	fp := m.fingerprint()
	if s.scanned && fp == s.fingerprint {
		return s.loaded, s.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeouts.NetworkValidate)
	defer cancel()
	s.loaded, s.err = loadConfDir(ctx, m.cni, s.dir)
	s.fingerprint, s.scanned = fp, true
	if s.err == nil {
		klog.InfoS("Using CNI network configuration", "file", s.loaded.file,
			"network", s.loaded.list.Name, "cniVersion", s.loaded.list.CNIVersion)
	} else {
		klog.InfoS("CNI network not ready", "reason", s.err.Error())
	}
	return s.loaded, s.err
}

// fingerprint summarises everything the selection depends on: the names,
// sizes and mtimes of candidate files (followed through symlinks, as
// ConfigMap-style ..data links are common), and the mtimes of the plugin
// directories, because a configuration rejected for a missing plugin binary
// must become valid when the binary is installed later.
func (m *Manager) fingerprint() string {
	var b strings.Builder
	entries, err := os.ReadDir(m.opts.ConfDir)
	if err != nil {
		fmt.Fprintf(&b, "conf-err:%v;", err)
	}
	for _, e := range entries {
		if !hasConfExt(e.Name()) {
			continue
		}
		fi, err := os.Stat(filepath.Join(m.opts.ConfDir, e.Name()))
		if err != nil {
			fmt.Fprintf(&b, "%s:err;", e.Name())
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	for _, d := range m.opts.BinDirs {
		if fi, err := os.Stat(d); err == nil {
			fmt.Fprintf(&b, "bin:%s:%d;", d, fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "bin:%s:missing;", d)
		}
	}
	return b.String()
}

func hasConfExt(name string) bool {
	ext := filepath.Ext(name)
	for _, e := range confExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

// loadConfDir picks the lexicographically first file in dir that parses and
// validates. Invalid files are skipped with a warning (they are logged only
// when the directory changes, since loads happen only then).
func loadConfDir(ctx context.Context, cni *libcni.CNIConfig, dir string) (*loadedConf, error) {
	files, err := libcni.ConfFiles(dir, confExtensions)
	if err != nil {
		return nil, notReady(fmt.Sprintf("cannot read network config dir %s: %v", dir, err))
	}
	if len(files) == 0 {
		return nil, notReady("no network config found in " + dir)
	}
	sort.Strings(files)

	var problems []string
	for _, f := range files {
		list, err := loadConfFile(f)
		if err == nil {
			err = validateList(ctx, cni, list)
		}
		if err != nil {
			klog.InfoS("Ignoring CNI config file", "file", f, "err", err)
			problems = append(problems, fmt.Sprintf("%s: %v", filepath.Base(f), err))
			continue
		}
		return &loadedConf{list: list, file: f}, nil
	}
	return nil, notReady(fmt.Sprintf("no valid network config found in %s: %s", dir, strings.Join(problems, "; ")))
}

// loadConfFile reads one file. A .conflist is a list; a .conf is a single
// plugin configuration wrapped into a list of one; a .json may be either,
// so it is told apart by the presence of "plugins".
func loadConfFile(path string) (*libcni.NetworkConfigList, error) {
	isList := strings.HasSuffix(path, ".conflist")
	if strings.HasSuffix(path, ".json") {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		_, isList = probe["plugins"]
	}
	if isList {
		return libcni.ConfListFromFile(path)
	}
	conf, err := libcni.ConfFromFile(path)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

// validateList rejects configurations that would only fail at pod creation:
// bad names, no plugins, unknown versions, plugin binaries that are missing
// or that do not speak the list's CNI version (CRI-O does the same).
func validateList(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList) error {
	if e := utils.ValidateNetworkName(list.Name); e != nil {
		return fmt.Errorf("invalid network name %q: %s", list.Name, e.Msg)
	}
	if len(list.Plugins) == 0 {
		return fmt.Errorf("network %q has no plugins", list.Name)
	}
	if list.CNIVersion != "" {
		if _, _, _, err := version.ParseVersion(list.CNIVersion); err != nil {
			return fmt.Errorf("network %q: %w", list.Name, err)
		}
	}
	if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
		return fmt.Errorf("network %q: %w", list.Name, err)
	}
	return nil
}

// CheckConfDir says which configuration a Manager over confDir and binDirs
// would use, as crisp check reports it: the file and network name, or why
// none is usable. found tells "no configuration yet" (a CNI add-on may still
// install one) from "none of them valid".
func CheckConfDir(ctx context.Context, confDir string, binDirs []string) (file, name string, found bool, err error) {
	files, _ := libcni.ConfFiles(confDir, confExtensions)
	l, err := loadConfDir(ctx, libcni.NewCNIConfig(binDirs, nil), confDir)
	if err != nil {
		return "", "", len(files) > 0, err
	}
	return l.file, l.list.Name, true, nil
}
