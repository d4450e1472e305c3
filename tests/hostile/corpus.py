"""The hostile-input corpus: cases, the builders that write them at test time, and the runner.

Every case is generated into its own folder when it runs (nothing binary is committed)::

    CASE/
      in/       the hostile inputs (and any good input a batch case needs beside them)
      out/      the only place the command may write
      canary/   files holding a secret token; hostile inputs point at them (``../``, absolute
                paths, symlinks), so reading one is caught
      tmp/      TMPDIR of the command
      audit.log what the command opened, listed, renamed, removed (an audit hook in the child)

:func:`run_case` runs the real CLI (``python -m facexpr.cli.main``, through a small launcher that
first installs a :func:`sys.addaudithook`) in a subprocess with a timeout and an address-space
limit, reaps it with :func:`os.wait4` for its peak RSS, and :func:`check` returns every broken
promise: exit code, traceback, the file and problem named, no read of the canary folder (seen by
the audit hook for Python-level opens and by inotify for opens from C code such as FFmpeg or
OpenCV), no write outside ``out/`` (and ``tmp/``), no canary bytes in any output or message,
memory and time bounds, and a case's own extra checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import resource
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The facexpr under test: this checkout's, or another tree (FACEXPR_HOSTILE_SRC=path/to/src).
SRC = Path(os.environ.get("FACEXPR_HOSTILE_SRC", REPO / "src")).resolve()
SHARED = Path(os.environ.get("FACEXPR_SHARED", REPO.parent / "shared"))
MEDIA = SHARED / "fixtures" / "media"

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RSS_MB = 1024.0
# The child's address space is capped so a runaway allocation fails in the child instead of
# taking the machine; torch and the thread stacks of the face models reserve a few GB of virtual
# memory without touching it (1.3 GB after the imports), so the cap sits well above the RSS bound.
ADDRESS_SPACE_LIMIT = 4 * 1024**3

# --------------------------------------------------------------------------- the case


@dataclass
class CaseDirs:
    """The folders of one case (see the module docstring)."""

    root: Path
    token: str

    @property
    def inp(self) -> Path:
        return self.root / "in"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def canary(self) -> Path:
        return self.root / "canary"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def canary_file(self) -> Path:
        """A plain secret file in the canary folder."""
        return self.canary / "secret.bin"


@dataclass
class Setup:
    """What a builder returns: the CLI arguments and the file or folder the error must name.

    Attributes:
        argv: arguments after ``facexpr`` (paths absolute).
        target: the hostile file or folder; its name must appear in stderr.
        forbidden: paths outside the case that must not be opened (e.g. ``/etc/passwd``).
        names: regex the stderr must match to count as naming the target; default: the target's
            file name, escaped.
    """

    argv: list[str]
    target: Path | str
    forbidden: tuple[str, ...] = ()
    names: str | None = None


# A post-check gets the case folders and the finished run and returns problems (empty: fine).
PostCheck = Callable[[CaseDirs, "Run"], list[str]]


@dataclass
class Case:
    """One hostile input and what the CLI must do with it.

    Attributes:
        name: unique id (the pytest id): ``family-what``.
        family: reader family (media, video, folders, tables, dataset, gltf, train).
        build: writes the inputs into ``dirs.inp`` (and the canary) and returns the :class:`Setup`.
        problem: regex the stderr must match (case-insensitive): the problem in words.
        expect_rc: accepted exit codes (2 for bad input, per the CLI's convention).
        timeout_s: wall-clock limit; the child is killed after it.
        max_rss_mb: peak RSS bound.
        post: extra checks (good inputs of a batch written, no duplicates, ...).
        skip: a reason to skip the case on this machine (e.g. running as root).
        note: why the case is hostile, shown by the benchmark.
    """

    name: str
    family: str
    build: Callable[[CaseDirs], Setup]
    problem: str
    expect_rc: tuple[int, ...] = (2,)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_rss_mb: float = DEFAULT_MAX_RSS_MB
    post: PostCheck | None = None
    skip: str | None = None
    note: str = ""


@dataclass
class Run:
    """The result of running one case.

    Attributes:
        rc: exit code (negative: killed by that signal).
        stdout, stderr: decoded output (invalid bytes backslash-escaped).
        seconds: wall time.
        max_rss_mb: peak resident set size of the child (``ru_maxrss``).
        timed_out: killed after ``timeout_s``.
        events: (kind, path) of the audit log: kind 'r' read-open, 'w' write-open or change,
            'l' listing, 'x' subprocess.
        canary_opens: names opened in the canary folder seen by inotify (C-level opens too).
    """

    rc: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float
    timed_out: bool
    events: list[tuple[str, str]] = field(default_factory=list)
    canary_opens: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the child

# Installed in the child before facexpr is imported. The hook must never raise or recurse: it
# writes with os.write (no audit event) to a descriptor opened before it records anything.
_HOOK = r"""
import os, sys
_state = {"fd": -1}
_WFLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_SKIP = tuple(p for p in os.environ.get("FACEXPR_AUDIT_SKIP", "").split(os.pathsep) if p)
_CHANGE = {"os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
           "os.link": (1,), "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,),
           "os.chown": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
           "tempfile.mkstemp": (0,), "tempfile.mkdtemp": (0,)}
def _emit(kind, path, _write=os.write):
    fd = _state["fd"]
    if fd < 0 or path is None or isinstance(path, int):
        return
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    path = os.path.abspath(os.fspath(path))
    if kind in "rl" and path.startswith(_SKIP):
        return
    _write(fd, (kind + "\t" + path + "\0").encode("utf-8", "surrogateescape"))
def _hook(event, args):
    try:
        if event == "open":
            path, mode, flags = args
            w = (flags or 0) & _WFLAGS or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            _emit("w" if w else "r", path)
        elif event in ("os.listdir", "os.scandir"):
            _emit("l", args[0] if args else ".")
        elif event in _CHANGE:
            for i in _CHANGE[event]:
                if i < len(args):
                    _emit("w", args[i])
        elif event == "subprocess.Popen":
            _emit("x", str(args[0]))
    except Exception:
        pass
sys.addaudithook(_hook)
"""

# One fresh interpreter per case: `python -c _LAUNCHER ARGS` is `python -m facexpr.cli.main ARGS`
# with the hook installed first.
_LAUNCHER = (
    _HOOK
    + r"""
_state["fd"] = os.open(os.environ["FACEXPR_AUDIT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                       0o600)
import runpy
sys.argv = ["facexpr", *sys.argv[1:]]
runpy.run_module("facexpr.cli.main", run_name="__main__", alter_sys=True)
"""
)

# A fork server: imports the heavy modules once, then forks one child per case, which runs the
# same `python -m facexpr.cli.main ARGS` (runpy, as `-m` does) in its own session, folders, stdout,
# stderr, audit log and address-space limit, and reports its exit status and peak RSS (wait4).
_SERVER = (
    _HOOK
    + r"""
import json, resource, signal, threading, time, traceback
for _m in os.environ.get("FACEXPR_PRELOAD", "").split(","):
    if _m:
        try:
            __import__(_m)
        except Exception:
            pass
import runpy, tempfile
_reply = os.fdopen(os.dup(1), "w")
_limit = int(os.environ["FACEXPR_AS_LIMIT"])
def _child(req):
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fl = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(req["stdout"], fl, 0o600), 1)
    os.dup2(os.open(req["stderr"], fl, 0o600), 2)
    os.chdir(req["cwd"])
    os.environ.update(req["env"])
    tempfile.tempdir = None
    _state["fd"] = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sys.argv = ["facexpr", *req["argv"]]
    sys.modules.pop("facexpr.cli.main", None)  # run as __main__ afresh, as -m does
    code = 0
    try:
        runpy.run_module("facexpr.cli.main", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(code)
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            _child(req)
        finally:
            os._exit(70)
    killed = threading.Event()
    def _kill(pid=pid, killed=killed):
        killed.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    timer = threading.Timer(req["timeout"], _kill)
    timer.start()
    _, status, ru = os.wait4(pid, 0)
    timer.cancel()
    timer.join()
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _reply.write(json.dumps({"status": status, "maxrss_kb": ru.ru_maxrss,
                             "seconds": time.perf_counter() - t0,
                             "timed_out": killed.is_set()}) + "\n")
    _reply.flush()
"""
)

# What the fork server imports before forking: every module a command imports at its start.
PRELOAD = (
    "numpy",
    "PIL.Image",
    "av",
    "cv2",
    "pandas",
    "torch",
    "facexpr.cli.main",
    "facexpr.analyze",
    "facexpr.io.inspect",
    "facexpr.io.shards",
    "facexpr.animate.retarget",
    "facexpr.avatars.export",
    "facexpr.avatars.gltf",
    "facexpr.avatars.avatar",
    "pygltflib",
)


# --------------------------------------------------------------------------- inotify

_IN_OPEN, _IN_ACCESS, _IN_MODIFY = 0x20, 0x01, 0x02
_IN_NONBLOCK = 0o4000


class _Watch:
    """Records opens of files in one folder (inotify), also by C code the audit hook cannot see."""

    def __init__(self, folder: Path) -> None:
        self.fd = -1
        name = ctypes.util.find_library("c")
        if not name or not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(name, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK)
        if fd < 0:
            return
        wd = libc.inotify_add_watch(fd, os.fsencode(folder), _IN_OPEN | _IN_ACCESS | _IN_MODIFY)
        if wd < 0:
            os.close(fd)
            return
        self.fd = fd

    def names(self) -> list[str]:
        """Returns the names opened, read or modified since the watch began (and closes it)."""
        if self.fd < 0:
            return []
        out: list[str] = []
        buf = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            buf += chunk
        os.close(self.fd)
        self.fd = -1
        i = 0
        while i + 16 <= len(buf):
            _wd, _mask, _cookie, n = struct.unpack_from("iIII", buf, i)
            raw = buf[i + 16 : i + 16 + n].rstrip(b"\0")
            out.append(os.fsdecode(raw) if raw else ".")
            i += 16 + n
        return out


# --------------------------------------------------------------------------- running


SESSION_TOKEN = f"CANARY-{secrets.token_hex(12)}"
"""The secret of this session: in every canary file and in the child's environment (so that
``/proc/self/environ`` copied into an output is caught like a canary file)."""


def make_dirs(root: Path) -> CaseDirs:
    """Creates the folders of a case under ``root`` (emptied first) with its canary files."""
    if root.exists():
        shutil.rmtree(root)
    dirs = CaseDirs(root=root, token=SESSION_TOKEN)
    for d in (dirs.inp, dirs.out, dirs.canary, dirs.tmp):
        d.mkdir(parents=True)
    dirs.canary_file.write_bytes(dirs.token.encode() * 64)
    (dirs.canary / "secret.txt").write_text(f"password={dirs.token}\n")
    return dirs


def _base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "COV_")) and k != "PYTHONSTARTUP"
    }
    skip = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(SRC), "/usr/lib", "/usr/share"}
    skip |= {p for p in sys.path if p and "site-packages" in p}
    env.update(
        PYTHONPATH=os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])]),
        FACEXPR_AUDIT_SKIP=os.pathsep.join(sorted(skip)),
        FACEXPR_HOSTILE_SECRET=SESSION_TOKEN,
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        LC_ALL="C.UTF-8",
    )
    return env


def _case_env(dirs: CaseDirs) -> dict[str, str]:
    # torch's compile caches live under the temp folder, but torch writes the path it chose into
    # os.environ the first time (TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor_<user>); a test run
    # that set it before the server started would make every child build an optimiser there.
    return {
        "FACEXPR_AUDIT_LOG": str(dirs.audit_log),
        "TMPDIR": str(dirs.tmp),
        "TORCHINDUCTOR_CACHE_DIR": str(dirs.tmp / "torchinductor"),
        "TRITON_CACHE_DIR": str(dirs.tmp / "triton"),
    }


def _limit_child() -> None:
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _read_run(
    dirs: CaseDirs, status: int, maxrss_kb: int, seconds: float, killed: bool, watch: _Watch
) -> Run:
    events: list[tuple[str, str]] = []
    if dirs.audit_log.exists():
        for rec in dirs.audit_log.read_bytes().split(b"\0"):
            if rec:
                kind, _, path = rec.decode("utf-8", "surrogateescape").partition("\t")
                events.append((kind, path))
    return Run(
        rc=os.waitstatus_to_exitcode(status),
        stdout=(dirs.root / "stdout.txt").read_bytes().decode("utf-8", "backslashreplace"),
        stderr=(dirs.root / "stderr.txt").read_bytes().decode("utf-8", "backslashreplace"),
        seconds=seconds,
        max_rss_mb=maxrss_kb / 1024.0,
        timed_out=killed,
        events=events,
        canary_opens=watch.names(),
    )


def run_cli(argv: Sequence[str], dirs: CaseDirs, timeout_s: float = DEFAULT_TIMEOUT_S) -> Run:
    """Runs ``facexpr ARGV`` in a fresh interpreter under the audit hook; returns the :class:`Run`.

    The child's cwd is ``dirs.out``; it is killed (its whole process group) after ``timeout_s``.
    """
    watch = _Watch(dirs.canary)
    with (
        open(dirs.root / "stdout.txt", "wb") as out_f,
        open(dirs.root / "stderr.txt", "wb") as err_f,
    ):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, *argv],
            cwd=dirs.out,
            env={**_base_env(), **_case_env(dirs)},
            stdin=subprocess.DEVNULL,
            stdout=out_f,
            stderr=err_f,
            preexec_fn=_limit_child,  # setsid + rlimits; the child has no threads yet
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            proc.returncode = 0  # reaped by wait4; Popen must not wait again
        seconds = time.perf_counter() - t0
        # Grandchildren (FFmpeg helpers, workers) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return _read_run(dirs, status, usage.ru_maxrss, seconds, killed.is_set(), watch)


class ForkServer:
    """Runs cases in children forked from one interpreter that has imported facexpr once.

    Each child still runs ``facexpr.cli.main`` as ``__main__`` (as ``python -m`` does) in its own
    session, with its own cwd, environment, stdout/stderr files, audit log, address-space limit and
    timeout, and its peak RSS comes from ``wait4``; what is shared is the import work (about
    2-4 s of the 3-5 s each case costs in a fresh interpreter). A child's peak RSS includes the
    pages of the preloaded modules (about 200 MB) but not the import-time peak of a fresh run:
    a good photo peaks at 255 MB forked and 366 MB fresh, an ``animate`` table at 217 and 151.
    """

    def __init__(self, preload: Sequence[str] = PRELOAD) -> None:
        self.preload = tuple(preload)
        self._start()

    def _start(self) -> None:
        env = _base_env()
        env.update(
            FACEXPR_PRELOAD=",".join(self.preload), FACEXPR_AS_LIMIT=str(ADDRESS_SPACE_LIMIT)
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
        )

    def run(self, argv: Sequence[str], dirs: CaseDirs, timeout_s: float = DEFAULT_TIMEOUT_S) -> Run:
        """Runs ``facexpr ARGV`` in a forked child; returns the :class:`Run`."""
        import json

        watch = _Watch(dirs.canary)
        req = {
            "argv": list(argv),
            "cwd": str(dirs.out),
            "env": _case_env(dirs),
            "log": str(dirs.audit_log),
            "stdout": str(dirs.root / "stdout.txt"),
            "stderr": str(dirs.root / "stderr.txt"),
            "timeout": timeout_s,
        }
        if self.proc.poll() is not None:  # a case killed the server itself: start another
            self._start()
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self._start()
            raise RuntimeError(f"the hostile-corpus fork server died running {list(argv)}")
        r = json.loads(line)
        return _read_run(dirs, r["status"], r["maxrss_kb"], r["seconds"], r["timed_out"], watch)

    def close(self) -> None:
        """Stops the server."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Writes the interpreter itself makes that are not the command's doing.
_ALLOWED_WRITES = ("/dev/null", "/dev/tty", "/dev/shm/")


def _inside(path: str, folder: Path) -> bool:
    f = str(folder)
    return path == f or path.startswith(f + os.sep)


def out_of_folder_writes(run: Run, dirs: CaseDirs) -> list[str]:
    """Returns the paths written (opened for writing, created, renamed, removed) outside
    ``out/`` and ``tmp/``."""
    bad = []
    for kind, path in run.events:
        if kind != "w" or path == str(dirs.audit_log):
            continue
        if _inside(path, dirs.out) or _inside(path, dirs.tmp) or path.startswith(_ALLOWED_WRITES):
            continue
        bad.append(path)
    return sorted(set(bad))


def canary_reads(run: Run, dirs: CaseDirs, forbidden: Sequence[str] = ()) -> list[str]:
    """Returns the canary or forbidden paths the child opened, listed or changed."""
    hits = {p for _, p in run.events if _inside(p, dirs.canary)}
    hits |= {p for _, p in run.events for f in forbidden if p == f or p.startswith(f + "/")}
    # inotify sees opens from C code; the watch itself is on the folder, so '.' is a listing.
    hits |= {str(dirs.canary / n) for n in run.canary_opens if n != "."}
    return sorted(hits)


def foreign_reads(run: Run, dirs: CaseDirs) -> list[str]:
    """Returns read-opened paths outside the case, the interpreter and the shared assets (for the
    benchmark's report; most are the system's own files)."""
    return sorted(
        {
            p
            for k, p in run.events
            if k == "r"
            and not _inside(p, dirs.root)
            and not _inside(p, SHARED)
            and not p.startswith(("/proc/", "/sys/", "/dev/", "/etc/ld.so"))
        }
    )


def files_with_token(dirs: CaseDirs) -> list[str]:
    """Returns the files under ``out/`` and ``tmp/`` that contain the canary token."""
    tok = dirs.token.encode()
    hits = []
    for base in (dirs.out, dirs.tmp):
        for root, _dirs, files in os.walk(base):
            for name in files:
                p = Path(root) / name
                try:
                    if p.is_file() and not p.is_symlink() and tok in p.read_bytes():
                        hits.append(str(p))
                except OSError:
                    continue
    return hits


def check(case: Case, setup: Setup, run: Run, dirs: CaseDirs) -> list[str]:
    """Returns every way ``run`` breaks the promises of ``case`` (empty list: it passed)."""
    problems: list[str] = []
    if run.timed_out:
        problems.append(f"timed out after {case.timeout_s:.0f} s (killed)")
    if run.rc not in case.expect_rc:
        problems.append(f"exit code {run.rc}, expected {' or '.join(map(str, case.expect_rc))}")
    if "Traceback (most recent call last)" in run.stderr or "Fatal Python error" in run.stderr:
        problems.append("traceback in stderr")
    if run.rc == 2 and not run.timed_out:
        names = setup.names or re.escape(Path(setup.target).name or str(setup.target))
        if not re.search(names, run.stderr):
            problems.append(f"stderr does not name {Path(setup.target).name!r}")
        # The case folder's path holds the case name: keep it out of the problem's match.
        said = run.stderr.replace(str(dirs.root), "<CASE>")
        if not re.search(case.problem, said, re.IGNORECASE):
            problems.append(f"stderr does not say /{case.problem}/")
    if hits := canary_reads(run, dirs, setup.forbidden):
        problems.append(f"opened outside the case folder (canary or forbidden): {', '.join(hits)}")
    if bad := out_of_folder_writes(run, dirs):
        problems.append(f"wrote outside out/: {', '.join(bad[:5])}")
    leaked = files_with_token(dirs)
    if dirs.token in run.stdout or dirs.token in run.stderr:
        leaked.append("<stdout/stderr>")
    if leaked:
        problems.append(f"canary bytes in {', '.join(leaked)}")
    if run.max_rss_mb > case.max_rss_mb:
        problems.append(f"peak RSS {run.max_rss_mb:.0f} MB > {case.max_rss_mb:.0f} MB")
    if case.post is not None and not run.timed_out:
        problems.extend(case.post(dirs, run))
    return problems


def last_error_line(stderr: str) -> str:
    """Returns the most telling line of stderr (the error, or the traceback's last line)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("facexpr: error") or "Error" in ln.split(":")[0]:
            return ln[:300]
    return lines[-1][:300] if lines else ""


@dataclass
class Outcome:
    """A case, what it did and what it broke."""

    case: Case
    run: Run | None
    problems: list[str]
    setup: Setup | None = None

    @property
    def passed(self) -> bool:
        return self.run is not None and not self.problems


def run_case(case: Case, root: Path, server: ForkServer | None = None) -> Outcome:
    """Builds ``case`` under ``root/case.name``, runs it (in a child of ``server``, else in a fresh
    interpreter) and checks it."""
    dirs = make_dirs(root / case.name)
    setup = case.build(dirs)
    if server is not None:
        run = server.run(setup.argv, dirs, case.timeout_s)
    else:
        run = run_cli(setup.argv, dirs, case.timeout_s)
    return Outcome(case, run, check(case, setup, run, dirs), setup)


FAMILIES = ("media", "video", "folders", "tables", "dataset", "gltf", "synth", "train")


def all_cases() -> list[Case]:
    """Returns every case of every ``cases_FAMILY.py`` module beside this one, names unique."""
    import importlib

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    cases: list[Case] = []
    for family in FAMILIES:
        cases.extend(importlib.import_module(f"cases_{family}").CASES)
    names = [c.name for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"duplicate hostile case names: {sorted(dup)}")
    return cases


# --------------------------------------------------------------------------- builders
# Bytes of hostile and good files, made with the standard library where the format is simple
# (PNG, TIFF, GLB, tar, JSON) so that a header can claim what the data does not hold.


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    w: int, h: int, *, color: int = 2, fill: int = 128, idat: bytes | None = None
) -> bytes:
    """Returns a PNG of ``w`` x ``h`` (colour type 2 RGB or 0 grey, 8 bit) filled with ``fill``;
    ``idat`` replaces the compressed pixel data (to claim more than it holds)."""
    channels = 3 if color == 2 else 1
    if idat is None:
        comp = zlib.compressobj(9)
        row = b"\0" + bytes([fill]) * (w * channels)
        parts = [comp.compress(row) for _ in range(h)]
        idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb(side: int = 16000) -> bytes:
    """Returns a grey PNG of ``side``² zero pixels: about side² / 1000 bytes, side² decoded."""
    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    chunks = [comp.compress(row) for _ in range(side)]
    return png_bytes(side, side, color=0, idat=b"".join(chunks) + comp.flush())


def jpeg_bytes(w: int = 64, h: int = 64) -> bytes:
    """Returns a real baseline JPEG of ``w`` x ``h`` (Pillow)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (120, 90, 60)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def jpeg_claiming(w: int, h: int) -> bytes:
    """Returns a small JPEG whose SOF header claims ``w`` x ``h`` px."""
    data = bytearray(jpeg_bytes(32, 32))
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, h, w)
    return bytes(data)


def tiff_claiming(w: int, h: int) -> bytes:
    """Returns a little-endian TIFF whose IFD claims a ``w`` x ``h`` 8-bit grey strip of 8 bytes."""
    entries = [
        (256, 4, 1, w),  # ImageWidth, LONG
        (257, 4, 1, h),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression none
        (262, 3, 1, 1),  # Photometric BlackIsZero
        (273, 4, 1, 8 + 2 + 12 * 10 + 4),  # StripOffsets: just after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, h),  # RowsPerStrip
        (279, 4, 1, min(w * h, 2**32 - 1)),  # StripByteCounts (a lie)
        (284, 3, 1, 1),  # PlanarConfig
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 8


def write_video(
    path: Path,
    sizes: Sequence[tuple[int, int]],
    *,
    codec: str = "mpeg4",
    fmt: str | None = None,
    fps: int = 10,
    options: dict[str, str] | None = None,
    frames: bytes | None = None,
) -> Path:
    """Writes a video with one frame per entry of ``sizes`` ((w, h) each; all the same unless the
    codec allows a change) and returns ``path``. An empty ``sizes`` gives a stream with no frame."""
    import av
    import numpy as np

    w, h = sizes[0] if sizes else (64, 64)
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = w, h
        s.pix_fmt = "rgb24" if codec in ("rawvideo", "png") else "yuv420p"
        rng = np.random.default_rng(0)
        for k, (fw, fh) in enumerate(sizes):
            img = rng.integers(0, 255, (fh, fw, 3), dtype=np.uint8)
            img[:, : max(1, fw * k // max(len(sizes), 1))] = 40
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def good_face(dest: Path) -> Path:
    """Copies the shared single-face photo to ``dest`` and returns ``dest``."""
    shutil.copyfile(MEDIA / "single_face.jpg", dest)
    return dest


def good_video(dest: Path) -> Path:
    """Copies the shared single-face video (72 frames) to ``dest`` and returns ``dest``."""
    shutil.copyfile(MEDIA / "single_face.mp4", dest)
    return dest


def tables_in(folder: Path) -> list[Path]:
    """Returns the finished table files in ``folder`` (not temporary or hidden ones)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix in (".csv", ".parquet", ".jsonl")
    )


def expect_tables(n: int, *, rows_at_least: int = 1) -> PostCheck:
    """Returns a post-check: exactly ``n`` finished tables in out/, each with a data row."""

    def post(dirs: CaseDirs, run: Run) -> list[str]:
        found = tables_in(dirs.out)
        if len(found) != n:
            return [f"{len(found)} tables in out/ ({[p.name for p in found]}), expected {n}"]
        short = [p.name for p in found if len(p.read_bytes().splitlines()) - 1 < rows_at_least]
        return [f"tables with < {rows_at_least} rows: {short}"] if short else []

    return post
