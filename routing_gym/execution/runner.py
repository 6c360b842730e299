"""Runs inside the sandbox's child process: confine itself, then execute ``program.py``.

Started as ``python -S -s -B runner.py CONFIG_JSON`` with the working directory already
set, so it imports only the standard library. It applies, in order: resource limits, a
seccomp filter (no new processes; no sockets but Unix ones when there is no network
namespace) and a Landlock ruleset (file writes only beneath the working directory, no TCP,
no signals or abstract sockets outside the sandbox). Each layer is skipped where the
kernel lacks it; the parent learns which layers held from the first stderr line.

Exit codes: 0 the program ran to the end; 1 it raised (traceback on stderr); 3 setup failed.
"""

import ctypes
import ctypes.util
import json
import os
import resource
import sys

SETUP_FAILED = 3
LAYERS_TAG = "routing_gym.sandbox layers: "

# -- Landlock (linux/landlock.h). Python's stdlib has no binding and this file must run
# before any site-packages are importable, hence ctypes. --------------------------------
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_WRITE_FILE, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 1, 1 << 14, 1 << 15
# every right that changes the file system: write, remove, make (char, dir, reg, sock, fifo,
# block, symlink), refer (ABI 2), truncate (ABI 3), ioctl on devices (ABI 5)
_FS_WRITE_RIGHTS_BY_ABI = {
    1: (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12),
}
_FS_WRITE_RIGHTS_BY_ABI[2] = _FS_WRITE_RIGHTS_BY_ABI[1] | (1 << 13)
_FS_WRITE_RIGHTS_BY_ABI[3] = _FS_WRITE_RIGHTS_BY_ABI[2] | _FS_TRUNCATE
_FS_WRITE_RIGHTS_BY_ABI[5] = _FS_WRITE_RIGHTS_BY_ABI[3] | _FS_IOCTL_DEV
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
    return ctypes.CDLL(None, use_errno=True)


def apply_landlock(writable: str) -> list:
    """Allow file-system changes only beneath ``writable`` (and writes to /dev/null); deny TCP."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        return []
    fs_rights = _FS_WRITE_RIGHTS_BY_ABI[max(k for k in _FS_WRITE_RIGHTS_BY_ABI if k <= abi)]
    attr = _RulesetAttr(fs_rights, (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0,
                        (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else ctypes.sizeof(ctypes.c_uint64) * (2 if abi >= 4 else 1)
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, rights in ((writable, fs_rights), ("/dev/null", _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0))):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(rights, fd)
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


# -- seccomp through libseccomp (the well-kept library for building filters). ------------
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_CMP_NE, _SCMP_CMP_MASKED_EQ = 1, 7
_CLONE_THREAD = 0x00010000
_AF_UNIX = 1
_EPERM, _EAGAIN, _EACCES, _ENOSYS = 1, 11, 13, 38
# Landlock leaves file metadata alone: without these a program could chmod, chown or
# re-date files it may not write.
_METADATA_SYSCALLS = (
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "setxattr", "lsetxattr", "fsetxattr", "setxattrat", "removexattr", "lremovexattr", "fremovexattr",
    "removexattrat", "utime", "utimes", "futimesat", "utimensat",
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _errno_action(errno: int) -> int:
    return 0x00050000 | (errno & 0xFFFF)


def apply_seccomp(block_sockets: bool) -> list:
    """Deny new processes (threads stay allowed), metadata changes and, if asked, every non-Unix socket."""
    try:  # the usual soname first: find_library spawns ldconfig, which costs a tenth of a second
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        name = ctypes.util.find_library("seccomp")
        if name is None:
            return []
        lib = ctypes.CDLL(name, use_errno=True)
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

    try:
        deny("fork", _EAGAIN)
        deny("vfork", _EAGAIN)
        deny("clone", _EAGAIN, _ArgCmp(0, _SCMP_CMP_MASKED_EQ, _CLONE_THREAD, 0))
        deny("clone3", _ENOSYS)  # its flags sit in memory a filter cannot read; libc falls back to clone
        for syscall in _METADATA_SYSCALLS:
            deny(syscall, _EPERM)
        layers = ["seccomp-noproc"]
        if block_sockets:
            deny("socket", _EACCES, _ArgCmp(0, _SCMP_CMP_NE, _AF_UNIX, 0))
            deny("socketpair", _EACCES, _ArgCmp(0, _SCMP_CMP_NE, _AF_UNIX, 0))
            layers.append("seccomp-nosocket")
        status = lib.seccomp_load(ctypes.c_void_p(ctx))
        if status != 0:
            raise OSError(-status, "seccomp_load failed")
    finally:
        lib.seccomp_release(ctypes.c_void_p(ctx))
    return layers


def apply_limits(config: dict) -> None:
    """CPU seconds, address space, file size, process count and no core dumps."""
    cpu = int(config["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (config["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["file_size_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (config["max_processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> int:
    config = json.loads(sys.argv[1])
    sys.argv = ["program.py"]
    workdir = os.getcwd()
    try:
        layers = ["rlimits"]
        if config["use_landlock"]:
            layers += apply_landlock(workdir)
        if config["use_seccomp"]:
            layers += apply_seccomp(block_sockets=config["block_sockets"])
        apply_limits(config)  # last: the setup above needs more address space than a tight limit leaves
    except Exception as exc:  # noqa: BLE001 - any setup failure is reported, never run unconfined
        sys.stderr.write(f"routing_gym.sandbox setup failed: {exc!r}\n")
        return SETUP_FAILED
    sys.stderr.write(LAYERS_TAG + ",".join(layers) + "\n")
    sys.stderr.flush()
    with open("program.py", encoding="utf-8") as handle:
        source = handle.read()
    try:
        exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException:  # noqa: BLE001 - SystemExit and KeyboardInterrupt fail the program too
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
