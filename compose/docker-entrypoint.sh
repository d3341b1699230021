#!/bin/sh
# Entrypoint of the MoE Hub images (web, migrate, workers): prepares the process, then
# execs the command unchanged.
#
# All images:  umask 0002. The web runs as `hub`, the workers as root, and both write under
#              HUB_DATA_DIR, a setgid directory of group `hub`. Group-writable files let each
#              side modify what the other created.
# Worker image (HUB_SANDBOX_PREFLIGHT=1, running as root):
#   1. delegates the container's cgroup v2 tree, so the sandbox can create a child cgroup
#      per job: the worker moves into /sys/fs/cgroup/supervisor, and the cpu, memory, pids
#      and io controllers are enabled for children of /sys/fs/cgroup;
#   2. probes bubblewrap as root and as an unprivileged user and logs the result. A failed
#      probe is not fatal: the sandbox fails the job itself and never runs it unsandboxed.
#      The log line points at the container setting that is missing;
#   3. creates the loop device nodes a job's disk quota needs (each job folder is a
#      loop-mounted ext4 image of the job's quota): Docker's /dev holds none of them, and the
#      kernel's new loop devices appear only on the host's devtmpfs.
set -eu

umask 0002

log() { printf 'hub-entrypoint: %s\n' "$*" >&2; }

fix_data_dir() {
    dir="${HUB_DATA_DIR:-/data}"
    [ -d "$dir" ] || return 0
    chgrp hub "$dir" 2>/dev/null && chmod 2775 "$dir" 2>/dev/null \
        || log "could not set group hub / setgid on $dir"
}

delegate_cgroups() {
    cg=/sys/fs/cgroup
    if [ ! -f "$cg/cgroup.controllers" ]; then
        log "no cgroup v2 at $cg: per-job cgroup limits are unavailable"
        return 0
    fi
    if ! mkdir -p "$cg/supervisor" 2>/dev/null; then
        # Docker mounts the container's cgroup namespace read-only; CAP_SYS_ADMIN may remount it.
        if ! { mount -o remount,rw "$cg" 2>/dev/null && mkdir -p "$cg/supervisor" 2>/dev/null; }; then
            log "$cg is read-only (the worker needs cap_add SYS_ADMIN and cgroup: private):" \
                "per-job cgroup limits are unavailable"
            return 0
        fi
    fi
    # cgroup v2 allows controllers for children only when no process sits in the parent.
    for pid in $(cat "$cg/cgroup.procs"); do
        echo "$pid" >"$cg/supervisor/cgroup.procs" 2>/dev/null || true
    done
    for controller in cpu memory pids io; do
        if grep -qw "$controller" "$cg/cgroup.controllers"; then
            echo "+$controller" >"$cg/cgroup.subtree_control" 2>/dev/null \
                || log "could not enable the $controller controller for job cgroups"
        fi
    done
    log "cgroups delegated: controllers for jobs: $(cat "$cg/cgroup.subtree_control")"
}

probe_bwrap() {
    who=$1
    shift
    # The same namespaces a job gets: no network, own PID/IPC/UTS/user namespaces, fresh /proc.
    if out=$("$@" bwrap --unshare-all --die-with-parent --ro-bind / / --proc /proc --dev /dev \
        --tmpfs /tmp -- /bin/true 2>&1); then
        log "sandbox preflight ($who): ok"
        return 0
    fi
    log "sandbox preflight ($who): FAILED: $out"
    return 1
}

loop_devices() {
    if [ ! -e /dev/loop-control ]; then
        log "no /dev/loop-control: job folders cannot get their disk quota, so jobs will be" \
            "retried and then fail (the worker service needs devices: /dev/loop-control)"
        return 0
    fi
    i=0
    while [ "$i" -lt "${HUB_LOOP_DEVICES:-64}" ]; do
        [ -e "/dev/loop$i" ] || mknod -m 0660 "/dev/loop$i" b 7 "$i" 2>/dev/null \
            || { log "could not create /dev/loop$i (the worker needs CAP_MKNOD)"; return 0; }
        i=$((i + 1))
    done
}

sandbox_preflight() {
    if ! command -v bwrap >/dev/null 2>&1; then
        log "sandbox preflight: bwrap is not installed in this image"
        return 0
    fi
    ok=0
    probe_bwrap root && ok=1
    if command -v setpriv >/dev/null 2>&1; then
        probe_bwrap "uid 65534" setpriv --reuid 65534 --regid 65534 --clear-groups && ok=1
    fi
    if [ "$ok" = 0 ]; then
        log "sandbox preflight: bubblewrap cannot create a sandbox here; jobs will fail." \
            "The worker service needs cap_add SYS_ADMIN and security_opt apparmor=unconfined," \
            "systempaths=unconfined (see compose/README.md, 'Worker security model')."
    fi
}

if [ "$(id -u)" = 0 ]; then
    fix_data_dir
    if [ "${HUB_SANDBOX_PREFLIGHT:-0}" = 1 ]; then
        delegate_cgroups
        sandbox_preflight
        loop_devices
    fi
fi

exec "$@"
