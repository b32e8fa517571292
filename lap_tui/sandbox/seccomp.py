"""The seccomp filter every sandboxed command runs under: no terminal injection ioctls.

`TIOCSTI` pushes bytes into a terminal's input queue as if typed; `TIOCLINUX` (subcode 3)
pastes the console selection. Either lets a process that holds a terminal type commands into
whatever reads that terminal next. A sandbox must never have that power, whatever the kernel's
`dev.tty.legacy_tiocsti` says, so bwrap loads this classic BPF program (`--seccomp FD`) before
it executes the sandbox's command; every process of the sandbox inherits it. Both ioctls fail
with EPERM; every other system call is untouched.

The program is built here rather than with libseccomp: it is a dozen instructions, and the
checks it must get right are few and visible:
- the architecture tag: an x86_64 process can also make i386 system calls (`int 0x80`, with
  their own numbers) and x32 ones (the same tag, numbers with bit 30 set); an aarch64 process,
  on kernels with 32-bit support, arm ones. Each is checked with its own ioctl number; x32 is
  refused entirely (nothing we run uses it). Any other tag kills the process.
- the request: the kernel reads ioctl's `cmd` as a 32-bit unsigned int, so only the low 32
  bits of the argument are compared (comparing all 64 would let `cmd | 1 << 32` through).
Hosts of other architectures get no filter: `build()` raises `Unsupported` and says so.
"""

from __future__ import annotations

import os
import platform
import struct

TIOCSTI = 0x5412
TIOCLINUX = 0x541C
DENIED_IOCTLS = (TIOCSTI, TIOCLINUX)

# <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT (0x80000000) | __AUDIT_ARCH_LE (0x40000000)
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH_ARM = 0x40000028
X32_SYSCALL_BIT = 0x40000000

# (architecture tag, ioctl's number under it, refuse x32 numbers) per host machine
ARCHES: dict[str, tuple[tuple[int, int, bool], ...]] = {
    "x86_64": ((AUDIT_ARCH_X86_64, 16, True), (AUDIT_ARCH_I386, 54, False)),
    "aarch64": ((AUDIT_ARCH_AARCH64, 29, False), (AUDIT_ARCH_ARM, 54, False)),
}
ARCHES["amd64"] = ARCHES["x86_64"]
ARCHES["arm64"] = ARCHES["aarch64"]

# <linux/seccomp.h>
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
EPERM = 1

# <linux/filter.h> / <linux/bpf_common.h>
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
OFF_NR = 0
OFF_ARCH = 4
OFF_ARG1_LOW = 16 + 8 * 1  # little-endian hosts only (both supported ones are)


class Unsupported(Exception):
    """No filter for this host's architecture."""


def build(machine: str | None = None) -> bytes:
    """The filter as bwrap reads it: an array of `struct sock_filter` in native byte order."""
    machine = (machine or platform.machine()).lower()
    arches = ARCHES.get(machine)
    if arches is None:
        raise Unsupported(f"no seccomp filter for the {machine or 'unknown'} architecture (only x86_64 "
                          "and aarch64): sandboxed commands run without the filter that blocks the "
                          "TIOCSTI/TIOCLINUX terminal-injection ioctls")
    return b"".join(struct.pack("=HBBI", *insn) for insn in _program(arches))


def _program(arches: tuple[tuple[int, int, bool], ...]) -> list[tuple[int, int, int, int]]:
    # Written with labels, assembled below: (op, k, jump-if-true label, jump-if-false label).
    code: list[tuple] = [("ld", OFF_ARCH)]
    for i, (tag, _, _) in enumerate(arches):
        code.append(("jeq", tag, f"arch{i}", None))
    code.append(("ret", SECCOMP_RET_KILL_PROCESS))
    for i, (_, nr, no_x32) in enumerate(arches):
        code.append(("label", f"arch{i}"))
        code.append(("ld", OFF_NR))
        if no_x32:
            code.append(("jge", X32_SYSCALL_BIT, "deny", None))
        code.append(("jeq", nr, "request", "allow"))
    code.append(("label", "request"))
    code.append(("ld", OFF_ARG1_LOW))
    for req in DENIED_IOCTLS:
        code.append(("jeq", req, "deny", None))
    code.append(("label", "allow"))
    code.append(("ret", SECCOMP_RET_ALLOW))
    code.append(("label", "deny"))
    code.append(("ret", SECCOMP_RET_ERRNO | EPERM))
    return _assemble(code)


def _assemble(code: list[tuple]) -> list[tuple[int, int, int, int]]:
    labels: dict[str, int] = {}
    pc = 0
    for item in code:
        if item[0] == "label":
            labels[item[1]] = pc
        else:
            pc += 1
    out: list[tuple[int, int, int, int]] = []
    for item in code:
        op = item[0]
        if op == "label":
            continue
        here = len(out)

        def rel(label: str | None) -> int:
            if label is None:
                return 0  # fall through to the next instruction
            off = labels[label] - here - 1
            assert 0 <= off < 256, "BPF jumps are forward and at most 255 instructions"
            return off

        if op == "ld":
            out.append((LD_W_ABS, 0, 0, item[1]))
        elif op in ("jeq", "jge"):
            out.append((JEQ_K if op == "jeq" else JGE_K, rel(item[2]), rel(item[3]), item[1]))
        elif op == "ret":
            out.append((RET_K, 0, 0, item[1]))
    return out


_cache: dict[str, bytes | Unsupported] = {}


def program() -> bytes:
    """This host's filter, built once per process; raises `Unsupported` on other architectures."""
    machine = platform.machine().lower()
    if machine not in _cache:
        try:
            _cache[machine] = build(machine)
        except Unsupported as exc:
            _cache[machine] = exc
    found = _cache[machine]
    if isinstance(found, Unsupported):
        raise found
    return found


def filter_fd(data: bytes) -> int:
    """A descriptor bwrap reads the filter from (to its end): the read end of a filled pipe.

    One per command: bwrap consumes it. The caller passes it to the child (`pass_fds`) and
    closes its own copy once the child is started.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        os.write(w, data)  # a few hundred bytes: far below a pipe's capacity, never blocks
    finally:
        os.close(w)
    return r
