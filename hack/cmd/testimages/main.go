// Command testimages builds, reproducibly, every container image that
// critest (cri-tools v1.37.0, pkg/validate) pulls, plus crisp's own test
// images, and pushes them to the local test registry (hack/registry.sh).
//
// Images keep their upstream repository path without the registry host:
//
//	registry.k8s.io/pause:3.9                        -> 127.0.0.1:5000/pause:3.9
//	docker.io/library/busybox:1.28                   -> 127.0.0.1:5000/library/busybox:1.28
//	gcr.io/k8s-staging-cri-tools/test-image-tags:1   -> 127.0.0.1:5000/k8s-staging-cri-tools/test-image-tags:1
//
// so that a runtime mirroring registry.k8s.io, k8s.gcr.io, gcr.io, docker.io
// and quay.io to http://127.0.0.1:5000 resolves the upstream names.
//
// Everything is built from Debian packages (apt-get download, cached) and
// small static C programs (csrc/, compiled with gcc), with fixed timestamps
// and deterministic tar/gzip, so digests are stable run to run. See
// hack/images/README.md for the list and what each image contains.
//
// Usage:
//
//	testimages [--registry 127.0.0.1:5000] [--cache _output/cache]
//	           [--layout DIR] [--no-push] [--list] [-v]
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the timestamp of every file and every image config.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

var verbose bool

func logf(format string, args ...any) {
	if verbose {
		fmt.Fprintf(os.Stderr, "testimages: "+format+"\n", args...)
	}
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// format selects the manifest flavour of an image.
type format int

const (
	ociFormat format = iota
	dockerFormat
)

func (f format) layerType() types.MediaType {
	if f == dockerFormat {
		return types.DockerLayer
	}
	return types.OCILayer
}

// recipe is a single-platform (linux/amd64) image.
type recipe struct {
	layers []*blob
	config v1.Config
}

func (r recipe) with(extra ...*blob) recipe {
	r.layers = append(append([]*blob{}, r.layers...), extra...)
	return r
}

func (r recipe) image(f format) (v1.Image, error) {
	img := empty.Image
	if f == ociFormat {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	cfg := r.config
	if len(cfg.Env) == 0 {
		cfg.Env = []string{"PATH=" + defaultPath}
	}
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	for _, b := range r.layers {
		l, err := b.Layer(f.layerType())
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     l,
			MediaType: f.layerType(),
			History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: b.desc, Comment: "crisp hack/cmd/testimages"},
		})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// index wraps the image in a one-platform image index / manifest list, as
// the upstream multi-arch images are.
func (r recipe) index(f format) (v1.ImageIndex, error) {
	img, err := r.image(f)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	if f == dockerFormat {
		idx = mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	}
	return mutate.AppendManifests(idx, mutate.IndexAddendum{
		Add:        plainDescriptor{img},
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
	}), nil
}

// plainDescriptor makes index entries look like the ones docker/buildx
// write: go-containerregistry would otherwise add an "artifactType" (the
// config media type) to every image descriptor of an index.
type plainDescriptor struct{ v1.Image }

func (p plainDescriptor) Descriptor() (*v1.Descriptor, error) {
	d := v1.Descriptor{}
	var err error
	if d.Size, err = p.Size(); err != nil {
		return nil, err
	}
	if d.Digest, err = p.Digest(); err != nil {
		return nil, err
	}
	if d.MediaType, err = p.MediaType(); err != nil {
		return nil, err
	}
	return &d, nil
}

// artifact is what gets pushed under one or more tags.
type artifact struct {
	img  v1.Image      // either img
	idx  v1.ImageIndex // or idx
	refs []string      // "path:tag" without registry host
	what string        // one-line description
}

func (a *artifact) digest() (v1.Hash, error) {
	if a.idx != nil {
		return a.idx.Digest()
	}
	return a.img.Digest()
}

func (a *artifact) mediaType() (types.MediaType, error) {
	if a.idx != nil {
		return a.idx.MediaType()
	}
	return a.img.MediaType()
}

func main() {
	reg := flag.String("registry", "127.0.0.1:5000", "registry host:port to push to (plain HTTP)")
	cacheDir := flag.String("cache", "_output/cache", "cache for .debs, compiled helpers, layers and the OCI layout")
	layoutDir := flag.String("layout", "", "OCI image layout to (re)write with all images (default <cache>/oci; \"-\" to skip)")
	noPush := flag.Bool("no-push", false, "build only")
	list := flag.Bool("list", false, "print the images (ref, digest, description) after building")
	flag.BoolVar(&verbose, "v", false, "verbose")
	flag.Parse()

	start := time.Now()
	arts, err := buildAll(*cacheDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testimages:", err)
		os.Exit(1)
	}
	nrefs := 0
	for _, a := range arts {
		nrefs += len(a.refs)
	}

	if *layoutDir != "-" {
		dir := *layoutDir
		if dir == "" {
			dir = filepath.Join(*cacheDir, "oci")
		}
		if err := writeLayout(dir, arts); err != nil {
			fmt.Fprintln(os.Stderr, "testimages: writing OCI layout:", err)
			os.Exit(1)
		}
	}

	// Record the digests next to the cache (handy for diffs between runs).
	var lines []string
	for _, a := range arts {
		d, _ := a.digest()
		mt, _ := a.mediaType()
		for _, r := range a.refs {
			lines = append(lines, fmt.Sprintf("%s\t%s\t%s\t%s", r, d, mt, a.what))
		}
	}
	sort.Strings(lines)
	_ = os.WriteFile(filepath.Join(*cacheDir, "digests.tsv"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	if *list {
		for _, l := range lines {
			fmt.Println(l)
		}
	}

	pushed, same := 0, 0
	if !*noPush {
		pushed, same, err = pushAll(*reg, arts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testimages:", err)
			os.Exit(1)
		}
	}
	action := fmt.Sprintf("%d pushed, %d already up to date on %s", pushed, same, *reg)
	if *noPush {
		action = "not pushed"
	}
	fmt.Printf("testimages: %d images under %d refs (%s) in %.1fs; digests in %s\n",
		len(arts), nrefs, action, time.Since(start).Seconds(), filepath.Join(*cacheDir, "digests.tsv"))
}

func writeLayout(dir string, arts []*artifact) error {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, a := range arts {
		for _, r := range a.refs {
			var add mutate.Appendable = a.img
			if a.idx != nil {
				add = a.idx
			}
			adds = append(adds, mutate.IndexAddendum{
				Add:        add,
				Descriptor: v1.Descriptor{Annotations: map[string]string{"org.opencontainers.image.ref.name": r}},
			})
		}
	}
	idx = mutate.AppendManifests(idx, adds...)
	_, err := layout.Write(dir, idx)
	return err
}

func pushAll(reg string, arts []*artifact) (pushed, same int, err error) {
	ctx := context.Background()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithJobs(4)}
	for _, a := range arts {
		want, err := a.digest()
		if err != nil {
			return pushed, same, err
		}
		for _, r := range a.refs {
			ref, err := name.ParseReference(reg+"/"+r, name.Insecure)
			if err != nil {
				return pushed, same, err
			}
			if d, err := remote.Head(ref, opts...); err == nil && d.Digest == want {
				same++
				logf("%s: up to date (%s)", r, want)
				continue
			} else if err != nil {
				var terr *transport.Error
				if !errors.As(err, &terr) {
					return pushed, same, fmt.Errorf("checking %s (is the registry running? hack/registry.sh start): %w", ref, err)
				}
			}
			if a.idx != nil {
				err = remote.WriteIndex(ref, a.idx, opts...)
			} else {
				err = remote.Write(ref, a.img, opts...)
			}
			if err != nil {
				return pushed, same, fmt.Errorf("pushing %s: %w", ref, err)
			}
			pushed++
			logf("%s: pushed %s", r, want)
		}
	}
	return pushed, same, nil
}

// ---------------------------------------------------------------------------
// File contents

// /etc/passwd and /etc/group as in the upstream busybox image.
const busyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const busyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`

const busyboxShadow = `root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
bin:*:19000:0:99999:7:::
sys:*:19000:0:99999:7:::
sync:*:19000:0:99999:7:::
mail:*:19000:0:99999:7:::
www-data:*:19000:0:99999:7:::
operator:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
`

const nsswitch = `passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
`

const nginxConf = `# crisp test stand-in for registry.k8s.io/e2e-test-images/nginx (Debian nginx).
user  www-data;
worker_processes  1;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;
    access_log    /var/log/nginx/access.log;
    sendfile      on;
    keepalive_timeout  65;
    include /etc/nginx/conf.d/*.conf;
}
`

const nginxMime = `types {
    text/html                html htm shtml;
    text/css                 css;
    text/plain               txt;
    application/javascript   js;
    application/json         json;
    image/png                png;
    image/x-icon             ico;
}
`

func nginxServer(port int) string {
	return fmt.Sprintf(`server {
    listen       %d;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
`, port)
}

const nginxIndex = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. (crisp test image)</p>
</body>
</html>
`

const httpdForeground = `#!/bin/sh
# Stand-in for the Apache httpd image's httpd-foreground: busybox httpd
# serving /usr/local/apache2/htdocs on port 80, in the foreground.
echo "AH00558: httpd: crisp test stand-in (busybox httpd) serving /usr/local/apache2/htdocs on port 80" >&2
/bin/httpd -f -v -p 80 -h /usr/local/apache2/htdocs &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit 0' TERM INT QUIT WINCH
wait $pid
`

// ---------------------------------------------------------------------------
// The images

func buildAll(cacheDir string) ([]*artifact, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	// Inputs.
	debs := map[string]string{}
	for _, p := range []string{"busybox", "libc6", "nginx", "libcrypt1", "libpcre2-8-0", "libssl3", "zlib1g"} {
		root, err := deb(cacheDir, p)
		if err != nil {
			return nil, err
		}
		debs[p] = root
		logf("using %s", debVersion(root))
	}
	bins := map[string]string{}
	for _, b := range []struct {
		name, out string
		defs      []string
	}{
		{"pgrep", "pgrep", nil},
		{"ipcs", "ipcs", nil},
		{"nnp", "nnp", nil},
		{"hugemap", "hugemap", nil},
		{"pause", "pause-3.9", []string{"-DVERSION=3.9"}},
		{"pause", "pause-3.10", []string{"-DVERSION=3.10"}},
		{"pause", "pause-3.10.1", []string{"-DVERSION=3.10.1"}},
	} {
		p, err := cbin(cacheDir, b.name, b.defs...)
		if err != nil {
			return nil, err
		}
		bins[b.out] = p
	}

	var buildErr error
	mk := func(l *layerFS) *blob {
		if buildErr != nil {
			return nil
		}
		b, err := l.Build(cacheDir)
		if err != nil {
			buildErr = err
		}
		return b
	}

	// --- busybox base: Debian's dynamic busybox + glibc, applets as hard
	// links in /bin like the upstream image, plus pgrep and ipcs helpers.
	bb := newLayer("busybox base: Debian busybox (dynamic) + glibc, applets hard-linked in /bin, pgrep/ipcs helpers")
	for _, d := range []string{"/bin", "/dev", "/etc", "/home", "/lib", "/lib64", "/proc", "/run", "/sys", "/usr", "/usr/bin", "/usr/sbin", "/var", "/var/spool", "/var/spool/mail", "/var/www"} {
		bb.Dir(d, 0o755)
	}
	bb.Dir("/root", 0o700)
	bb.Dir("/tmp", 0o1777)
	bbBin := filepath.Join(debs["busybox"], "bin/busybox")
	bb.FileFrom("/bin/busybox", 0o755, bbBin)
	applets, err := busyboxApplets(bbBin)
	if err != nil {
		return nil, err
	}
	for _, a := range applets {
		bb.Hardlink("/bin/"+a, "/bin/busybox")
	}
	bb.FileFrom("/bin/pgrep", 0o755, bins["pgrep"])
	bb.FileFrom("/bin/ipcs", 0o755, bins["ipcs"])
	if err := bb.AddTree(debs["libc6"], "lib/", "lib64/"); err != nil {
		return nil, err
	}
	bb.File("/etc/passwd", 0o644, busyboxPasswd)
	bb.File("/etc/group", 0o644, busyboxGroup)
	bb.File("/etc/shadow", 0o640, busyboxShadow)
	bb.File("/etc/nsswitch.conf", 0o644, nsswitch)
	bb.File("/etc/os-release", 0o644, "NAME=\"crisp test busybox\"\nID=busybox\nVERSION_ID="+strings.Fields(debVersion(debs["busybox"]))[1]+"\nPRETTY_NAME=\"busybox ("+debVersion(debs["busybox"])+", "+debVersion(debs["libc6"])+")\"\n")
	busybox := recipe{layers: []*blob{mk(bb)}, config: v1.Config{Env: []string{"PATH=" + defaultPath}, Cmd: []string{"sh"}}}

	// --- cri-tools image-test: busybox + an empty file named after the image.
	marker := func(file string) *blob {
		l := newLayer("ADD " + file + " " + file)
		l.File("/"+file, 0o644, "")
		return mk(l)
	}

	// --- predefined group image (images/image-predefined-group).
	pg := newLayer("adduser -u 1000 -D default-user && addgroup -g 50000 group-defined-in-image && addgroup default-user group-defined-in-image")
	pg.File("/etc/passwd", 0o644, busyboxPasswd+"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")
	pg.File("/etc/group", 0o644, busyboxGroup+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
	pg.File("/etc/shadow", 0o640, busyboxShadow+"default-user:!:19000:0:99999:7:::\n")
	pg.DirOwned("/home/default-user", 0o755, 1000, 1000)

	// --- nginx (Debian nginx + its libraries).
	ng := newLayer("nginx: Debian nginx + libcrypt1, libpcre2-8-0, libssl3, zlib1g; config, html")
	if err := ng.AddTree(debs["nginx"], "usr/sbin/"); err != nil {
		return nil, err
	}
	for _, p := range []string{"libcrypt1", "libpcre2-8-0", "libssl3", "zlib1g"} {
		if err := ng.AddTree(debs[p], "lib/", "usr/lib/"); err != nil {
			return nil, err
		}
	}
	ng.File("/etc/nginx/nginx.conf", 0o644, nginxConf)
	ng.File("/etc/nginx/mime.types", 0o644, nginxMime)
	ng.File("/etc/nginx/conf.d/default.conf", 0o644, nginxServer(80))
	ng.File("/usr/share/nginx/html/index.html", 0o644, nginxIndex)
	ng.File("/usr/share/nginx/html/50x.html", 0o644, "<html><body><h1>An error occurred.</h1></body></html>\n")
	ng.Dir("/var/log/nginx", 0o755)
	ng.Symlink("/var/log/nginx/access.log", "/dev/stdout")
	ng.Symlink("/var/log/nginx/error.log", "/dev/stderr")
	ng.Dir("/var/lib/nginx", 0o755)
	ng.Dir("/var/cache/nginx", 0o755)
	ng.Dir("/var/lock", 0o755)
	ng.Dir("/var/run", 0o755)
	nginxCfg := v1.Config{
		Env:          []string{"PATH=" + defaultPath, "NGINX_VERSION=" + strings.Fields(debVersion(debs["nginx"]))[1]},
		Cmd:          []string{"nginx", "-g", "daemon off;"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
		StopSignal:   "SIGQUIT",
	}
	nginx := busybox.with(mk(ng))
	nginx.config = nginxCfg

	hn := newLayer("COPY default.conf /etc/nginx/conf.d/default.conf (listen 12003)")
	hn.File("/etc/nginx/conf.d/default.conf", 0o644, nginxServer(12003))
	hostnet := nginx.with(mk(hn))
	hostnet.config.ExposedPorts = map[string]struct{}{"12003/tcp": {}}

	// --- httpd stand-in.
	hd := newLayer("httpd stand-in: busybox httpd on :80 serving /usr/local/apache2/htdocs")
	hd.File("/usr/local/apache2/htdocs/index.html", 0o644, "<html><body><h1>It works!</h1></body></html>\n")
	hd.File("/usr/local/bin/httpd-foreground", 0o755, httpdForeground)
	httpd := busybox.with(mk(hd))
	httpd.config = v1.Config{
		Env:          []string{"PATH=/usr/local/apache2/bin:" + defaultPath, "HTTPD_PREFIX=/usr/local/apache2"},
		Cmd:          []string{"httpd-foreground"},
		WorkingDir:   "/usr/local/apache2",
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	}

	// --- nonewprivs: setuid-root program printing its effective uid.
	nn := newLayer("COPY nnp /usr/local/bin/nnp; chmod +s /usr/local/bin/nnp")
	nn.FileFrom("/usr/local/bin/nnp", 0o4755, bins["nnp"])
	nnp := busybox.with(mk(nn))
	nnp.config = v1.Config{Env: []string{"PATH=" + defaultPath}, Entrypoint: []string{"/usr/local/bin/nnp"}}

	// --- pause: only a static /pause, like upstream.
	pause := func(ver string) recipe {
		l := newLayer("COPY pause (" + ver + ") /pause")
		l.FileFrom("/pause", 0o755, bins["pause-"+ver])
		return recipe{layers: []*blob{mk(l)}, config: v1.Config{
			Env: []string{"PATH=" + defaultPath}, Entrypoint: []string{"/pause"}, User: "65535:65535", WorkingDir: "/",
		}}
	}

	// --- crisp-test/big: busybox + 5 layers of 10 MiB deterministic,
	// incompressible pseudo-random data (/data/big/layer-N.bin).
	big := busybox
	for i := 1; i <= 5; i++ {
		var seed [32]byte
		copy(seed[:], fmt.Sprintf("crisp-test/big layer %d", i))
		data := make([]byte, 10<<20)
		r := rand.NewChaCha8(seed)
		_, _ = r.Read(data)
		l := newLayer(fmt.Sprintf("10 MiB of ChaCha8 data seeded %q", string(seed[:])))
		l.FileBytes(fmt.Sprintf("/data/big/layer-%d.bin", i), 0o644, data)
		big = big.with(mk(l))
	}
	big.config = busybox.config

	// --- crisp-test/hugepages: busybox + hugemap, which maps and touches N
	// 2 MiB huge pages (hugetlb limit tests).
	hm := newLayer("COPY hugemap /usr/local/bin/hugemap")
	hm.FileFrom("/usr/local/bin/hugemap", 0o755, bins["hugemap"])
	hugepages := busybox.with(mk(hm))

	// --- crisp-test/whiteout: exercises layer unpacking.
	//
	// layer 1: busybox base
	// layer 2: /data/keep.txt            "keep\n"
	//          /data/remove-me.txt       "remove me\n"
	//          /data/dir-gone/x.txt      "x\n"
	//          /data/opaque/old1.txt     "old1\n"
	//          /data/opaque/sub/old2.txt "old2\n"
	//          /data/plain/a.txt         "a\n"
	// layer 3: /data/.wh.remove-me.txt          (whiteout: deletes the file)
	//          /data/.wh.dir-gone               (whiteout: deletes the directory)
	//          /data/opaque/.wh..wh..opq        (opaque: hides old1.txt and sub/)
	//          /data/opaque/new.txt      "new\n"
	//          /data/plain/b.txt         "b\n" (plain directory merge)
	//          /data/links/original.txt  "hardlinked\n"
	//          /data/links/hardlink.txt  hard link -> data/links/original.txt
	//          /data/links/symlink-rel   symlink -> original.txt
	//          /data/links/symlink-abs   symlink -> /data/keep.txt
	//
	// Expected /data after unpacking: keep.txt, opaque/new.txt (only),
	// plain/{a,b}.txt, links/{original.txt, hardlink.txt (same inode),
	// symlink-rel, symlink-abs}; no remove-me.txt, no dir-gone/, no
	// opaque/old1.txt or opaque/sub/, and no .wh.* files.
	w2 := newLayer("whiteout test: base data")
	w2.File("/data/keep.txt", 0o644, "keep\n")
	w2.File("/data/remove-me.txt", 0o644, "remove me\n")
	w2.File("/data/dir-gone/x.txt", 0o644, "x\n")
	w2.File("/data/opaque/old1.txt", 0o644, "old1\n")
	w2.File("/data/opaque/sub/old2.txt", 0o644, "old2\n")
	w2.File("/data/plain/a.txt", 0o644, "a\n")
	w3 := newLayer("whiteout test: deletions, opaque dir, hard link, symlinks")
	w3.Whiteout("/data/remove-me.txt")
	w3.Whiteout("/data/dir-gone")
	w3.Opaque("/data/opaque")
	w3.File("/data/opaque/new.txt", 0o644, "new\n")
	w3.File("/data/plain/b.txt", 0o644, "b\n")
	w3.File("/data/links/original.txt", 0o644, "hardlinked\n")
	w3.Hardlink("/data/links/hardlink.txt", "/data/links/original.txt")
	w3.Symlink("/data/links/symlink-rel", "original.txt")
	w3.Symlink("/data/links/symlink-abs", "/data/keep.txt")
	whiteout := busybox.with(mk(w2), mk(w3))

	// --- crisp-test/rootfs: the whiteout image plus a layer of what a
	// root filesystem must keep (native-root tests):
	//
	// layer 4: /data/plain/.wh..wh..opq       (opaque: hides a.txt and b.txt)
	//          /data/plain/c.txt         "c\n"
	//          /data/links/.wh.symlink-abs    (whiteout of a layer-3 symlink)
	//          /data/attrs/               user.crisp="dir"
	//          /data/attrs/ping           security.capability (cap_net_raw+ep),
	//                                     user.crisp="file"
	//          /data/attrs/ping-link      hard link -> ping
	//          /data/dev/fifo             fifo 0620
	//          /data/dev/null             char 1:3 0666
	//          /data/owned                1234:5678 0640
	//          /data/private/secret       in a 1000:1000 0700 directory
	//          /data/suid                 04755
	//          /data/sparse               1 MiB, 4 KiB of "x" at 512 KiB
	//                                     (unpacked with holes)
	w4 := newLayer("rootfs test: xattrs, devices, owners, setuid, sparse")
	w4.Opaque("/data/plain")
	w4.File("/data/plain/c.txt", 0o644, "c\n")
	w4.Whiteout("/data/links/symlink-abs")
	w4.Dir("/data/attrs", 0o755)
	w4.Xattr("/data/attrs", "user.crisp", "dir")
	w4.File("/data/attrs/ping", 0o755, "ping\n")
	w4.Xattr("/data/attrs/ping", "security.capability", string([]byte{1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
	w4.Xattr("/data/attrs/ping", "user.crisp", "file")
	w4.Hardlink("/data/attrs/ping-link", "/data/attrs/ping")
	w4.Node("/data/dev/fifo", tar.TypeFifo, 0o620, 0, 0)
	w4.Node("/data/dev/null", tar.TypeChar, 0o666, 1, 3)
	w4.FileOwned("/data/owned", 0o640, 1234, 5678, "owned\n")
	w4.DirOwned("/data/private", 0o700, 1000, 1000)
	w4.FileOwned("/data/private/secret", 0o600, 1000, 1000, "secret\n")
	w4.File("/data/suid", 0o4755, "#!/bin/sh\n")
	sparse := make([]byte, 1<<20)
	copy(sparse[512<<10:], bytes.Repeat([]byte("x"), 4096))
	w4.FileBytes("/data/sparse", 0o644, sparse)
	rootfsImg := whiteout.with(mk(w4))

	if buildErr != nil {
		return nil, buildErr
	}

	// Assemble the artifacts.
	var arts []*artifact
	var err2 error
	addImg := func(r recipe, f format, what string, refs ...string) {
		if err2 != nil {
			return
		}
		img, err := r.image(f)
		if err != nil {
			err2 = err
			return
		}
		arts = append(arts, &artifact{img: img, refs: refs, what: what})
	}
	addIdx := func(r recipe, f format, what string, refs ...string) {
		if err2 != nil {
			return
		}
		idx, err := r.index(f)
		if err != nil {
			err2 = err
			return
		}
		arts = append(arts, &artifact{idx: idx, refs: refs, what: what})
	}
	const cri = "k8s-staging-cri-tools/"

	// registry.k8s.io/e2e-test-images/*: Docker manifest lists.
	addIdx(busybox, dockerFormat, "busybox (critest default container image)", "e2e-test-images/busybox:1.29-2")
	addIdx(nginx, dockerFormat, "nginx web server on :80, /var/run/nginx.pid", "e2e-test-images/nginx:1.14-2")
	addIdx(httpd, dockerFormat, "httpd stand-in (busybox httpd on :80)", "e2e-test-images/httpd:2.4.39-4")
	addIdx(nnp, dockerFormat, "setuid-root /usr/local/bin/nnp printing 'Effective uid: N'", "e2e-test-images/nonewprivs:1.3")

	// registry.k8s.io/pause and k8s.gcr.io/pause: OCI indexes, distinct images.
	for _, v := range []string{"3.9", "3.10", "3.10.1"} {
		addIdx(pause(v), ociFormat, "pause "+v+" (static /pause, USER 65535:65535)", "pause:"+v)
	}

	// docker.io/library/busybox and public.ecr.aws/docker/library/busybox
	// (critest's image benchmarks): plain Docker schema 2 manifests.
	addImg(busybox, dockerFormat, "busybox",
		"library/busybox:latest", "library/busybox:1", "library/busybox:1.28", "library/busybox:1.29",
		"library/busybox:1.36", "library/busybox:1.36.1", "library/busybox:1.37", "library/busybox:1.37.0",
		"docker/library/busybox:1", "docker/library/busybox:1.35.0-glibc", "docker/library/busybox:1-glibc",
		"docker/library/busybox:1-musl", "docker/library/busybox:1-uclibc")

	// gcr.io/k8s-staging-cri-tools/*: OCI indexes (multi-arch upstream) plus
	// the per-arch "-amd64" images the upstream build script also pushes.
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		r := busybox.with(marker(n))
		addIdx(r, ociFormat, "busybox + /"+n, cri+n+":latest")
		addImg(r, ociFormat, "busybox + /"+n, cri+n+"-amd64:latest")
	}
	same := busybox.with(marker("same-image"))
	addIdx(same, ociFormat, "busybox + /same-image (one image, three tags)", cri+"test-image-tags:1", cri+"test-image-tags:2", cri+"test-image-tags:3")
	addImg(same, ociFormat, "busybox + /same-image", cri+"test-image-tags-amd64:1", cri+"test-image-tags-amd64:2", cri+"test-image-tags-amd64:3")
	for _, t := range []string{"test", "all"} {
		r := busybox.with(marker(t))
		addIdx(r, ociFormat, "busybox + /"+t, cri+"test-image-tag:"+t)
		addImg(r, ociFormat, "busybox + /"+t, cri+"test-image-tag-amd64:"+t)
	}
	for _, u := range []struct{ name, user string }{
		{"test-image-user-uid", "1002"},
		{"test-image-user-username", "www-data"},
		{"test-image-user-uid-group", "1003:1004"},
		{"test-image-user-username-group", "www-data:1004"},
	} {
		r := busybox
		r.config.User = u.user
		addIdx(r, ociFormat, "busybox, USER "+u.user, cri+u.name+":latest")
		addImg(r, ociFormat, "busybox, USER "+u.user, cri+u.name+"-amd64:latest")
	}
	pgr := busybox.with(mk(pg))
	pgr.config.User = "1000"
	addIdx(pgr, ociFormat, "busybox + default-user(1000) in group-defined-in-image(50000), USER 1000", cri+"test-image-predefined-group:latest")
	addImg(pgr, ociFormat, "busybox + default-user(1000) in group-defined-in-image(50000), USER 1000", cri+"test-image-predefined-group-amd64:latest")
	addImg(hostnet, ociFormat, "nginx listening on :12003 (host network tests)", cri+"hostnet-nginx-amd64:latest")
	addIdx(hostnet, ociFormat, "nginx listening on :12003 (host network tests)", cri+"hostnet-nginx:latest")

	// crisp's own test images.
	addImg(big, ociFormat, "busybox + 5 x 10 MiB incompressible layers (pull benchmarks)", "crisp-test/big:1")
	addImg(hugepages, ociFormat, "busybox + /usr/local/bin/hugemap N (maps N 2 MiB huge pages)", "crisp-test/hugepages:1")
	addImg(whiteout, ociFormat, "busybox + whiteout/opaque/hard link/symlink layers (unpack tests)", "crisp-test/whiteout:1")
	addImg(rootfsImg, ociFormat, "crisp-test/whiteout + a layer of xattrs, devices, owners, setuid, a sparse file (native-root tests)", "crisp-test/rootfs:1")

	if err2 != nil {
		return nil, err2
	}
	if buildErr != nil {
		return nil, buildErr
	}
	return arts, nil
}
