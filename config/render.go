package config

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Map is the configuration as the TOML file spells it: the file's key names,
// durations as "5m0s". crictl info shows it (as JSON), so what an operator
// reads there can be written back into crisp.toml.
func (c *Config) Map() (map[string]any, error) {
	s, err := c.TOML()
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if _, err := toml.Decode(s, &m); err != nil {
		return nil, fmt.Errorf("config: re-reading the rendered configuration: %w", err)
	}
	return m, nil
}

// keyLine matches a "key = value" line of the encoder's output; table
// headers and blank lines do not match.
var keyLine = regexp.MustCompile(`^(\s*)([A-Za-z0-9_]+) = `)

// Commented renders the configuration as the file `make install` puts in
// /etc/crisp/crisp.toml: every key commented out with its value and what it
// does, table headers left in. Loaded as is it is the defaults; a key
// uncommented in place is read under its table. The descriptions are the
// flags' usage strings, so a key and its flag cannot be documented twice.
func (c *Config) Commented() (string, error) {
	s, err := c.TOML()
	if err != nil {
		return "", err
	}
	docs := keyDocs()
	var b strings.Builder
	b.WriteString("# crisp configuration (" + DefaultPath + "), rendered by `crisp config --commented`.\n" +
		"# Every key is commented out at its default: crisp's built-in values apply\n" +
		"# until a key is uncommented (in its [table]). A command-line flag overrides\n" +
		"# the file. `crisp config` prints the effective configuration.\n")
	table := ""
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[]")
			b.WriteString(line + "\n")
			if table == "registries" {
				b.WriteString(registriesExample)
			}
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			b.WriteString(line + "\n")
			continue
		}
		key := m[2]
		if table != "" {
			key = table + "." + key
		}
		if d := docs[key]; d != "" {
			if table == "" {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%s# %s\n", m[1], d)
		}
		fmt.Fprintf(&b, "%s# %s\n", m[1], strings.TrimLeft(line, " \t"))
	}
	return b.String(), sc.Err()
}

// registriesExample documents the per-host table, which has no default entry.
const registriesExample = `# Per-registry settings, one table per host (flags --registry-mirror,
# --registry-ca-file, --registry-insecure, --registry-skip-upstream):
# [registries."docker.io"]
#   mirrors = ["http://127.0.0.1:5000"]  # tried in order before the host
#   insecure = false                     # plain HTTP / unverified TLS to the host
#   ca_file = ""                         # PEM bundle trusted for the host and its mirrors
#   skip_upstream = false                # never fall back to the host itself
`

// usageKey finds the "(key x.y)" a flag's usage ends with.
var usageKey = regexp.MustCompile(`\s*\(key ([a-z0-9_.]+)\)$`)

// flaglessDocs describes the keys no flag sets (TestCommentedIsTheDefaults
// wants every key described).
var flaglessDocs = map[string]string{}

// keyDocs describes each key by its flag: "<usage> (flag --<name>)". A
// list's flag takes its items comma-separated; the file has a TOML list.
func keyDocs() map[string]string {
	docs := map[string]string{}
	for k, d := range flaglessDocs {
		docs[k] = d
	}
	for _, f := range flagSetters {
		m := usageKey.FindStringSubmatchIndex(f.usage)
		if m == nil {
			continue
		}
		text := strings.TrimPrefix(f.usage[:m[0]], "comma-separated ")
		docs[f.usage[m[2]:m[3]]] = text + " (flag --" + f.name + ")"
	}
	return docs
}
