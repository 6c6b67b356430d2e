# hack/kubelet/cdi.sh: a CDI device reaching a container through kubelet, for
# hack/e2e-kubelet.sh. kubelet hands a container CDI devices only as a device
# plugin or DRA driver tells it to (pod annotations never reach the
# container's), so a device plugin (hack/kubelet/deviceplugin, built by
# build.sh) offers vendor.example/gpu: gpu0 through the CRI field
# CDI_devices, gpu1 through a cdi.k8s.io/* container annotation. The spec
# lives in a private spec directory (crisp's cdi.spec_dirs) and points at
# nodes made with mknod: gpu0 a copy of /dev/fuse (10:229), which only a
# cgroup rule lets a container open, gpu1 a copy of /dev/zero (1:5).
# Sourced after lib.sh and pods.sh.
# shellcheck shell=bash

dp_pid=

# setup_cdi: the nodes, a file to mount, the spec, and crisp's spec_dirs.
# Runs after setup_host, before crisp starts.
setup_cdi() {
	mkdir -p "$WORK/cdi" "$WORK/cdi-dev" "$WORK/cdi-lib"
	mknod -m 0666 "$WORK/cdi-dev/gpu0" c 10 229
	mknod -m 0666 "$WORK/cdi-dev/gpu1" c 1 5
	echo vendor-lib-1.0 >"$WORK/cdi-lib/libvendor.txt"
	cat >"$WORK/cdi/.vendor-gpu.yaml" <<YAML
cdiVersion: "0.6.0"
kind: vendor.example/gpu
containerEdits:
  env: [VENDOR_EXAMPLE_DRIVER=1.0]
  mounts:
  - {hostPath: $WORK/cdi-lib, containerPath: /usr/local/vendor, options: [ro, nosuid, nodev, bind]}
devices:
- name: gpu0
  containerEdits:
    env: [VENDOR_EXAMPLE_GPU0=present]
    deviceNodes: [{path: /dev/vendor/gpu0, hostPath: $WORK/cdi-dev/gpu0}]
- name: gpu1
  containerEdits:
    env: [VENDOR_EXAMPLE_GPU1=present]
    deviceNodes: [{path: /dev/vendor/gpu1, hostPath: $WORK/cdi-dev/gpu1}]
YAML
	mv "$WORK/cdi/.vendor-gpu.yaml" "$WORK/cdi/vendor-gpu.yaml"
	printf '[cdi]\nspec_dirs = ["%s"]\n' "$WORK/cdi" >>"$WORK/crisp.toml"
}

# start_device_plugin: once kubelet runs. kubelet's device plugin directory
# is fixed (its --root-dir does not move it); the plugin removes its socket
# when it stops. Once kubelet has listed the devices (device_plugin_listed)
# they count in the node's capacity.
start_device_plugin() {
	"$BIN/e2e-deviceplugin" --dir /var/lib/kubelet/device-plugins >>"$WORK/deviceplugin.log" 2>&1 &
	dp_pid=$!
}
device_plugin_listed() { grep -q "listed 2 devices" "$WORK/deviceplugin.log"; }
stop_device_plugin() {
	stop_pid "$dp_pid" e2e-deviceplugin
	dp_pid=
	mkdir -p "$ROOT/_output/e2e-kubelet"
	cp "$WORK/deviceplugin.log" "$ROOT/_output/e2e-kubelet/" 2>/dev/null || true
}

cdi_pod() { simple_pod cdi "$IMAGE" "$LOOP" '{vendor.example/gpu: 2}'; }

# cdi_inside CONTAINER: what the container sees of its devices, one line each.
cdi_inside() {
	cri exec "$1" sh -c '
		for d in gpu0 gpu1; do echo "$d $(stat -c "%F %t:%T" /dev/vendor/$d)"; done
		exec 3<>/dev/vendor/gpu0 && echo "gpu0 open rw ok"
		echo "gpu1 read $(head -c 8 /dev/vendor/gpu1 | od -An -tx1 | tr -d " \n")"
		echo "env $VENDOR_EXAMPLE_DRIVER $VENDOR_EXAMPLE_GPU0 $VENDOR_EXAMPLE_GPU1"
		echo "mount $(cat /usr/local/vendor/libvendor.txt)"'
}
