"""First stage of a sandbox run: confine this process, then replace it with ``harness.py``.

Started as ``python -I -S -B confine.py CONFIG_JSON`` in the run's working directory (under
``unshare`` in namespace mode). It applies, in order: a size-limited tmpfs over the working
directory (namespace mode only), a Landlock ruleset (reads only of what the interpreter
needs, writes only beneath the working directory, no TCP, no signals or abstract sockets
outside), a seccomp filter (no sockets, no new processes or programs, no mounts, no
tracing) and resource limits. Then it ``execveat``s the interpreter on ``harness.py``, the
only program the filter lets it start, through a close-on-exec descriptor that the exec closes.

The harness never loads ctypes, and Landlock keeps ``_ctypes`` and the CPython test
modules unreadable, so model code cannot reach the memory of the process by ordinary means.

Exit codes: 3 setup failed (a layer the config requires is missing or failed to load);
any other code comes from the harness.
"""

import ctypes
import json
import os
import resource
import sys

SETUP_FAILED = 3
LAYERS_TAG = "routing_gym.sandbox layers: "
#: the descriptor numbers the harness expects; above RLIMIT_NOFILE, so no new descriptor lands there
EXEC_FD_MIN = 1000
MAX_OPEN_FILES = 256

# -- Landlock (linux/landlock.h). Python's stdlib has no binding and this file runs before any
# site-packages are importable, hence ctypes. -------------------------------------------------
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1}
_FS_RIGHTS_BY_ABI[2] = _FS_RIGHTS_BY_ABI[1] | REFER
_FS_RIGHTS_BY_ABI[3] = _FS_RIGHTS_BY_ABI[2] | TRUNCATE
_FS_RIGHTS_BY_ABI[5] = _FS_RIGHTS_BY_ABI[3] | IOCTL_DEV
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may grant
# the run's own folder: make, write and remove files and folders; list it; never read a file
# back (so nothing written there can be imported: no .py, .pyc, zip or native extension)
_WORKDIR_RIGHTS = WRITE_FILE | READ_DIR | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | REFER | TRUNCATE
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_PR_SET_NO_NEW_PRIVS = 38


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def apply_landlock(workdir: str, config: dict) -> list:
    """Reads only of ``config``'s interpreter files, writes only beneath ``workdir``, no TCP."""
    libc = _libc()
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        return []
    handled = _FS_RIGHTS_BY_ABI[max(k for k in _FS_RIGHTS_BY_ABI if k <= abi)]
    attr = _RulesetAttr(handled, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64) * (2 if abi >= 4 else 1)
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    rules = [(workdir, _WORKDIR_RIGHTS), ("/dev/null", READ_FILE | WRITE_FILE | TRUNCATE)]
    rules += [(path, READ_DIR) for path in config["list_dirs"]]
    rules += [(path, READ_FILE | READ_DIR) for path in config["read_dirs"]]
    rules += [(path, READ_FILE) for path in config["read_files"]]
    rules += [(path, READ_FILE | EXECUTE) for path in config["exec_files"]]
    try:
        for path, rights in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if not os.path.isdir(path):
                    rights &= _FILE_RIGHTS
                rule = _PathBeneathAttr(rights & handled, fd)
                if libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                                ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    layers = ["landlock-fs"]
    if abi >= 4:
        layers.append("landlock-tcp")
    if abi >= 6:
        layers.append("landlock-scope")
    return layers


# -- seccomp through libseccomp (the well-kept library for building filters). ---------------
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_NE, _SCMP_CMP_MASKED_EQ = 1, 7
_CLONE_THREAD = 0x00010000
_EPERM, _EAGAIN, _EACCES, _ENOSYS = 1, 11, 13, 38
# Landlock leaves file metadata alone: without these a program could chmod, chown or re-date
# files it may not write.
_METADATA_SYSCALLS = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr", "fremovexattr",
    "removexattrat", "utime", "utimes", "futimesat", "utimensat",
)
# Every way out of the process but its own descriptors: sockets of any family (io_uring can make
# them too), other processes' memory and descriptors, namespaces and mounts (in namespace mode
# the program is root in its own user namespace), signals by queue, memory-backed files that
# would escape the disk budget, kernel keyrings, BPF and perf.
_DENIED_SYSCALLS = (
    "socket", "socketpair", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "pidfd_send_signal", "kcmp",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig",
    "fspick", "move_mount", "open_tree", "mount_setattr", "memfd_create", "memfd_secret",
    "tkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "keyctl", "add_key", "request_key", "bpf",
    "perf_event_open", "userfaultfd", "personality", "execve",
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _errno_action(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


def _libseccomp():
    try:  # the usual soname first: find_library spawns ldconfig, which costs a tenth of a second
        return ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        from ctypes import util  # costly (it imports subprocess), so only when the usual soname is missing

        name = util.find_library("seccomp")
        return None if name is None else ctypes.CDLL(name, use_errno=True)


def apply_seccomp(lib, exec_fd: int) -> list:
    """Deny sockets, new processes (threads stay allowed), programs but ``exec_fd``, signals to
    other processes, metadata changes and the escape hatches in ``_DENIED_SYSCALLS``."""
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(_SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")

    def deny(syscall: str, errno: int, *comparisons: _ArgCmp) -> None:
        number = lib.seccomp_syscall_resolve_name(syscall.encode())
        if number < 0:  # not a syscall on this architecture (e.g. fork on arm64)
            return
        array = (_ArgCmp * len(comparisons))(*comparisons) if comparisons else None
        status = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), _errno_action(errno), number, len(comparisons), array)
        if status != 0:
            raise OSError(-status, f"seccomp_rule_add({syscall}) failed")

    me = os.getpid()
    try:
        deny("fork", _EAGAIN)
        deny("vfork", _EAGAIN)
        deny("clone", _EAGAIN, _ArgCmp(0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, 0))
        deny("clone3", _ENOSYS)  # its flags sit in memory a filter cannot read; libc falls back to clone
        for syscall in _METADATA_SYSCALLS:
            deny(syscall, _EPERM)
        for syscall in _DENIED_SYSCALLS:
            deny(syscall, _EACCES if syscall in ("socket", "socketpair") else _EPERM)
        # the one program this process may start is the harness, through ``exec_fd``; it is
        # closed by that exec, and RLIMIT_NOFILE keeps any new descriptor below its number
        deny("execveat", _EPERM, _ArgCmp(0, _SCMP_CMP_NE, exec_fd, 0))
        # signals only to itself (raise(), pthread_kill); Landlock's scope covers this too from ABI 6
        deny("kill", _EPERM, _ArgCmp(0, _SCMP_CMP_NE, me, 0))
        deny("tgkill", _EPERM, _ArgCmp(0, _SCMP_CMP_NE, me, 0))
        status = lib.seccomp_load(ctypes.c_void_p(ctx))
        if status != 0:
            raise OSError(-status, "seccomp_load failed")
    finally:
        lib.seccomp_release(ctypes.c_void_p(ctx))
    return ["seccomp"]


def mount_tmpfs(workdir: str, size_bytes: int, max_inodes: int) -> list:
    """A tmpfs of ``size_bytes`` over ``workdir``: the run's disk budget (needs a mount namespace)."""
    libc = _libc()
    ms_nosuid, ms_nodev, ms_noexec = 2, 4, 8
    options = f"size={int(size_bytes)},nr_inodes={int(max_inodes)},mode=0700".encode()
    if libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", ctypes.c_ulong(ms_nosuid | ms_nodev | ms_noexec), options) != 0:
        raise OSError(ctypes.get_errno(), f"mount tmpfs on {workdir} failed")
    os.chdir(workdir)  # the old directory handle points below the mount
    return ["tmpfs"]


def apply_limits(config: dict) -> None:
    """CPU seconds, address space, file size, open files and no core dumps."""
    cpu = int(config["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["file_size_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _execveat(lib, fd: int, argv: list, env: dict) -> None:
    """Replace this process with the program open at ``fd`` (glibc's fexecve may go through
    /proc/self/fd, which Landlock hides)."""
    number = lib.seccomp_syscall_resolve_name(b"execveat") if lib is not None else -1
    if number < 0:
        number = {"x86_64": 322, "aarch64": 281}.get(os.uname().machine, -1)
    if number < 0:
        os.execve(fd, argv, env)
    libc = _libc()
    c_argv = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
    c_env = (ctypes.c_char_p * (len(env) + 1))(*[f"{k}={v}".encode() for k, v in env.items()], None)
    at_empty_path = 0x1000
    libc.syscall(ctypes.c_long(number), ctypes.c_int(fd), ctypes.c_char_p(b""), c_argv, c_env,
                 ctypes.c_int(at_empty_path))
    raise OSError(ctypes.get_errno(), "execveat of the harness failed")


def main() -> int:
    config = json.loads(sys.argv[1])
    workdir = os.getcwd()
    try:
        layers = ["rlimits"]
        if config["tmpfs_bytes"]:
            layers += mount_tmpfs(workdir, config["tmpfs_bytes"], config["max_inodes"])
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft <= EXEC_FD_MIN + 8:
            raised = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        import fcntl

        python_fd = os.open(config["python"], os.O_PATH)
        # close-on-exec: execveat runs the harness through it and the harness never holds it
        exec_fd = fcntl.fcntl(python_fd, fcntl.F_DUPFD_CLOEXEC, EXEC_FD_MIN)
        os.close(python_fd)
        lib = _libseccomp() if config["use_seccomp"] else None  # loaded before Landlock hides it
        if config["use_landlock"]:
            layers += apply_landlock(workdir, config)
        if lib is not None:
            layers += apply_seccomp(lib, exec_fd)
        missing = [layer for layer in config["require"] if layer not in layers]
        if missing:
            raise OSError(f"this system lacks the required layers {missing} (Sandbox(strict=False) runs without them)")
        apply_limits(config)  # last: the setup above needs more room than a tight limit leaves
    except Exception as exc:  # noqa: BLE001 - any setup failure is reported, never run unconfined
        sys.stderr.write(f"routing_gym.sandbox setup failed: {exc}\n")
        return SETUP_FAILED
    sys.stderr.write(LAYERS_TAG + ",".join(layers) + "\n")
    sys.stderr.flush()
    harness = {key: config[key] for key in ("verdict_fd", "max_write_opens", "max_dirs")}
    # -P -s rather than -I, which would also drop PYTHONHASHSEED from the (already scrubbed) environment
    argv = [config["python"], "-P", "-s", "-S", "-B", config["harness"], json.dumps(harness)]
    try:
        _execveat(lib, exec_fd, argv, dict(os.environ))
    except OSError as exc:
        sys.stderr.write(f"routing_gym.sandbox setup failed: {exc}\n")
    return SETUP_FAILED


if __name__ == "__main__":
    sys.exit(main())
