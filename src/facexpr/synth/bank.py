"""Identity banks: real people captured once as textured avatars, rendered many times.

Capturing a person (front-end, fit, unwrap: about 1.5 s) is slow and rendering (tens of ms) is
fast, so :func:`build_bank` captures every person of a source once into a folder, and the
synthetic engine (:class:`facexpr.synth.engine.SynthOptions` ``identity_bank``) renders them with
any number of expressions, poses, lights and backgrounds.

A bank folder holds ``bank.json`` and, per captured identity, either a **compact** entry (the
default: ``<key>.npz`` with the fitted ICT FaceKit identity coefficients and ``<key>.png`` with the
texture, ~40 KB at texture 256; the rig rebuilds the neutral face and the 53 morph targets from the
coefficients, exactly as the capture made them) or a ``<key>.glb`` (exactly what ``facexpr avatar
capture`` writes: ICT FaceKit topology, the person's neutral shape, the 53 morph targets, the
texture, ~19 MB; :func:`facexpr.avatars.avatar.avatar_from_gltf` loads it).
:func:`export_entry_glb` writes the glTF of any entry. ``bank.json``::

    {"format": "facexpr.identity_bank", "version": 2,
     "options": {"texture_size": 256, "frames": 5, ..., "entry_format": "compact"},
     "entries": [{"file": "0_1_2_2017.npz", "texture": "0_1_2_2017.png",
                  "person": "utk-201701041657",
                  "source": "/data/UTKFace/0_1_2_2017....chip.jpg", "residual": 0.021,
                  "tone": [0.86, 0.64, 0.55], "seen_fraction": 0.52, "notes": []}, ...],
     "failures": [{"source": "/data/x.jpg", "person": "x", "reason": "no face found"}, ...]}

Version 1 banks (``.glb`` entries, no ``entry_format`` option) are still read. ``person`` is
the source person: all entries of one person go to the same split
(:func:`person_split`, a stable hash of the id). Failures are listed with their reason, never
dropped. A rerun skips every source already captured or failed (``retry_failed`` retries the
failures); files are written through :mod:`facexpr.io._files` (atomic renames, a folder lock).

Sources: a photo (one person), a video (one person, near-neutral frames merged), a folder of them
(each file one person, or each first-level subfolder one person with several photos), several of
these, or a UTKFace root (one entry per file; the person is the reader's leakage cluster,
:attr:`facexpr.io.datasets.utkface.UTKFaceName.subject_id`). Research-use datasets (UTKFace)
give research-use banks: never commit one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from facexpr.core.errors import ConfigError, FacexprError, InputError

log = logging.getLogger(__name__)

__all__ = [
    "BANK_FILE",
    "Bank",
    "BankEntry",
    "BankFailure",
    "BankOptions",
    "BankReport",
    "BankSource",
    "bank_entry_format",
    "build_bank",
    "export_entry_glb",
    "is_bank",
    "list_bank_sources",
    "load_bank",
    "person_split",
]

BANK_FILE = "bank.json"
FORMAT = "facexpr.identity_bank"
VERSION = 2
_READ_VERSIONS = (1, 2)
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class BankOptions:
    """Options of :func:`build_bank`.

    Attributes:
        texture_size: texture height in texels (the texture is S x 2S), >= 32; small is fast.
        frames: most video frames merged per person (>= 1).
        several: a photo with several faces: capture the ``"largest"`` (noted) or ``"refuse"`` it.
        min_face_score: the detector's threshold, in (0, 1).
        entry_format: ``"compact"`` (identity coefficients ``.npz`` + texture ``.png``, ~40 KB
            a person at texture 256) or ``"glb"`` (a full glTF per person, ~19 MB).
    """

    texture_size: int = 256
    frames: int = 5
    several: Literal["largest", "refuse"] = "largest"
    min_face_score: float = 0.5
    entry_format: Literal["compact", "glb"] = "compact"

    def __post_init__(self) -> None:
        if self.entry_format not in ("compact", "glb"):
            raise ConfigError(
                f"BankOptions.entry_format must be 'compact' or 'glb', got {self.entry_format!r}"
            )
        if self.texture_size < 32:
            raise ConfigError(f"BankOptions.texture_size must be >= 32, got {self.texture_size}")
        if self.frames < 1:
            raise ConfigError(f"BankOptions.frames must be >= 1, got {self.frames}")
        if self.several not in ("largest", "refuse"):
            raise ConfigError(
                f"BankOptions.several must be 'largest' or 'refuse', got {self.several!r}"
            )
        if not 0.0 < self.min_face_score < 1.0:
            raise ConfigError(
                f"BankOptions.min_face_score must be in (0, 1), got {self.min_face_score}"
            )


@dataclass(frozen=True, slots=True)
class BankSource:
    """One person-file to capture.

    Attributes:
        key: unique entry name in the bank (its files are ``key`` + ``.npz``/``.png``/``.glb``).
        person: source person id (the split unit).
        path: the photo or video.
    """

    key: str
    person: str
    path: str


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One captured identity of a bank.

    Attributes:
        file: the ``.npz`` (compact entry) or ``.glb`` name, relative to the bank folder.
        person: source person id (subject-exclusive splits use it).
        source: the photo or video it was captured from.
        residual: the fit residual (mean landmark error / inter-ocular distance) of the best frame.
        tone: RGB skin tone in [0, 1] that filled the unseen skin.
        seen_fraction: fraction of the skin texels the source showed.
        notes: sentences from the capture (several faces, frames dropped ...).
        texture: the texture ``.png`` of a compact entry ("" for a ``.glb`` entry).
    """

    file: str
    person: str
    source: str
    residual: float
    tone: tuple[float, float, float]
    seen_fraction: float
    notes: tuple[str, ...] = ()
    texture: str = ""

    @property
    def key(self) -> str:
        """Returns the entry name (the file name without ``.glb``/``.npz``)."""
        return Path(self.file).stem if self.file.endswith((".glb", ".npz")) else self.file

    @property
    def compact(self) -> bool:
        """True for a compact entry (``.npz`` + ``.png``), False for a ``.glb``."""
        return self.file.endswith(".npz")


@dataclass(frozen=True, slots=True)
class BankFailure:
    """A source that could not be captured, and why."""

    source: str
    person: str
    reason: str
    key: str = ""


@dataclass(frozen=True)
class Bank:
    """A bank folder read back (:func:`load_bank`).

    Attributes:
        folder: the bank folder.
        entries: the captured identities, in ``bank.json`` order.
        failures: the sources that failed, with their reasons.
        options: the options the bank was built with.
        sha256: hex digest of ``bank.json`` (datasets rendered from the bank record it).
    """

    folder: Path
    entries: tuple[BankEntry, ...]
    failures: tuple[BankFailure, ...]
    options: BankOptions
    sha256: str

    def path(self, entry: BankEntry) -> Path:
        """Returns the ``.glb`` or ``.npz`` of an entry."""
        return self.folder / entry.file

    def index(self, key: str) -> int:
        """Returns the index of the entry named ``key``.

        Raises:
            InputError: no entry has that name (the message lists a few that do).
        """
        for i, e in enumerate(self.entries):
            if e.key == key:
                return i
        some = ", ".join(e.key for e in self.entries[:5])
        more = ", ..." if len(self.entries) > 5 else ""
        raise InputError(self.folder / BANK_FILE, f"no entry named {key!r} (entries: {some}{more})")

    def select(self, split: Literal["all", "train", "test"], test_fraction: float) -> list[int]:
        """Returns the indices of the entries whose person falls in ``split``."""
        if split == "all":
            return list(range(len(self.entries)))
        return [
            i for i, e in enumerate(self.entries) if person_split(e.person, test_fraction) == split
        ]


@dataclass
class BankReport:
    """What :func:`build_bank` did.

    Attributes:
        folder: the bank folder.
        captured: keys captured by this run.
        skipped: keys already in the bank (captured or failed before).
        failed: failures of this run.
        seconds: wall time.
    """

    folder: Path
    captured: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[BankFailure] = field(default_factory=list)
    seconds: float = 0.0


def person_split(person: str, test_fraction: float) -> Literal["train", "test"]:
    """Returns the split of a source person: ``"test"`` for a stable ``test_fraction`` of ids.

    The id's sha256 is read as a number in [0, 1): the same person is in the same split on
    every machine, run and seed, and a larger fraction only moves people from train to test.

    Raises:
        ConfigError: ``test_fraction`` not in [0, 1].
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1], got {test_fraction}")
    h = int.from_bytes(hashlib.sha256(person.encode("utf-8", "surrogateescape")).digest()[:8])
    return "test" if h / 2.0**64 < test_fraction else "train"


def _safe(text: str) -> str:
    s = _KEY_BAD.sub("_", text).strip("._") or "person"
    return s[:80]


def list_bank_sources(
    inputs: Sequence[str | Path], *, limit: int | None = None
) -> tuple[list[BankSource], list[InputError]]:
    """Returns the person-files of the inputs (see the module docstring) and the problems found.

    Args:
        inputs: photos, videos, folders of them, or UTKFace roots.
        limit: keep the first ``limit`` person-files (in order).

    Returns:
        (sources, problems): problems are inputs that are not media (missing, empty folders ...);
        they are failures of the bank, not errors.
    """
    from facexpr.io.datasets.utkface import UTKFace, is_utkface_root
    from facexpr.io.sources import scan_inputs

    out: list[BankSource] = []
    problems: list[InputError] = []
    keys: set[str] = set()

    def add(key: str, person: str, path: Path) -> None:
        k = _safe(key)
        if k in keys:  # two files with the same safe name: keep both, apart
            tag = hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]
            k = f"{k}-{tag}"
        keys.add(k)
        out.append(BankSource(k, person, str(path)))

    for item in inputs:
        p = Path(item)
        if p.is_dir() and is_utkface_root(p):
            utk = UTKFace(p, limit=limit)
            for i, name in enumerate(utk):
                stem = name.file.split(".jpg")[0]
                add(stem, name.subject_id, utk.path(i))
            continue
        scan = scan_inputs([p])
        problems.extend(scan.problems)
        for s in scan.sources:
            f = Path(s.path)
            if p.is_dir():
                rel = f.relative_to(p)
                # A first-level subfolder is one person with several photos.
                person = rel.parts[0] if len(rel.parts) > 1 else rel.with_suffix("").as_posix()
                add(rel.with_suffix("").as_posix().replace("/", "__"), person, f)
            else:
                add(f.stem, f.stem, f)
    if limit is not None:
        out = out[: max(0, int(limit))]
    return out, problems


def is_bank(path: str | Path) -> bool:
    """Returns True if ``path`` is a folder with a ``bank.json``."""
    return (Path(path) / BANK_FILE).is_file()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e}); rebuild the bank") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, f'not an identity bank manifest (no "format": "{FORMAT}")')
    if data.get("version") not in _READ_VERSIONS:
        raise InputError(
            path, f"identity bank version {data.get('version')!r}; this facexpr reads "
            f"{' and '.join(str(v) for v in _READ_VERSIONS)}",
        )  # fmt: skip
    return data


def _options_of(data: dict[str, Any]) -> dict[str, Any]:
    """Returns a manifest's options with the defaults of older versions filled in (version 1
    banks hold ``.glb`` entries and have no ``entry_format``)."""
    opts = data.get("options", {})
    if not isinstance(opts, dict):
        return opts
    return {**opts, "entry_format": opts.get("entry_format", "glb")}


def bank_entry_format(folder: str | Path) -> str | None:
    """Returns the entry format (``"compact"``/``"glb"``) of the bank in ``folder``, or None if
    there is no bank there yet.

    Raises:
        InputError: its ``bank.json`` is damaged.
    """
    man = Path(folder) / BANK_FILE
    if not man.is_file():
        return None
    fmt = _options_of(_read_json(man)).get("entry_format")
    return str(fmt) if fmt in ("compact", "glb") else None


def _entry(d: Any, path: Path, k: int) -> BankEntry:
    try:
        tone = tuple(float(x) for x in d["tone"])
        if len(tone) != 3:
            raise ValueError("tone must have 3 values")
        e = BankEntry(
            file=str(d["file"]),
            person=str(d["person"]),
            source=str(d["source"]),
            residual=float(d["residual"]),
            tone=tone,  # type: ignore[arg-type]
            seen_fraction=float(d["seen_fraction"]),
            notes=tuple(str(n) for n in d.get("notes", ())),
            texture=str(d.get("texture", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"entries[{k}] is malformed ({e!s}); rebuild the bank") from None
    if Path(e.file).name != e.file or not e.file.endswith((".glb", ".npz")):
        raise InputError(
            path, f"entries[{k}].file must be a .glb or .npz name in the bank, got {e.file!r}"
        )
    if e.compact and (Path(e.texture).name != e.texture or not e.texture.endswith(".png")):
        raise InputError(
            path, f"entries[{k}].texture must be a .png name in the bank, got {e.texture!r}"
        )
    return e


def _missing(path: Path, man: Path) -> InputError:
    return InputError(
        path, f"listed in {man} but missing; rerun 'facexpr synth identities' into this folder "
        "to capture it again",
    )  # fmt: skip


def _check_head(path: Path, man: Path, magic: bytes, what: str) -> None:
    """Checks that a listed file exists and starts with ``magic``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
    except FileNotFoundError:
        raise _missing(path, man) from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from None
    if head != magic:
        raise InputError(path, f"not {what}; capture it again")


def _check_glb(path: Path, man: Path) -> None:
    """Checks that a listed ``.glb`` exists and has a whole GLB header (magic, version 2, the
    length of the file); its content is checked when it is loaded."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(12)
    except FileNotFoundError:
        raise _missing(path, man) from None
    except OSError as e:
        raise InputError(path, f"cannot read ({e.strerror})") from None
    ok = len(head) == 12 and head[:4] == b"glTF"
    if not ok or int.from_bytes(head[4:8], "little") != 2:
        raise InputError(path, "not a glTF binary (.glb) file; capture it again")
    said = int.from_bytes(head[8:12], "little")
    if said != size:
        raise InputError(
            path, f"truncated or damaged .glb (its header says {said} bytes, the file has "
            f"{size}); capture it again",
        )  # fmt: skip


def load_bank(folder: str | Path, *, check_files: bool = True) -> Bank:
    """Returns the bank in ``folder``.

    Args:
        folder: a bank folder (written by :func:`build_bank`).
        check_files: check that every listed file exists and has the right header.

    Raises:
        InputError: the folder or its ``bank.json`` is missing or malformed, a listed file is
            missing, or the bank has no identity.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "identity bank not found")
    if not folder.is_dir():
        raise InputError(folder, "an identity bank is a folder (with bank.json), not a file")
    man = folder / BANK_FILE
    if not man.is_file():
        raise InputError(
            folder, f"not an identity bank: no {BANK_FILE} (build one with 'facexpr synth "
            "identities SOURCE -o DIR')",
        )  # fmt: skip
    data = _read_json(man)
    try:
        options = BankOptions(**_options_of(data))
    except (TypeError, ConfigError) as e:
        raise InputError(man, f"bad options ({e})") from None
    entries = tuple(_entry(d, man, k) for k, d in enumerate(data.get("entries", [])))
    failures = tuple(
        BankFailure(str(d.get("source", "")), str(d.get("person", "")), str(d.get("reason", "")),
                    str(d.get("key", "")))
        for d in data.get("failures", []) if isinstance(d, dict)
    )  # fmt: skip
    if check_files:
        for e in entries:
            if e.compact:
                _check_head(folder / e.file, man, b"PK", "an .npz file (a zip archive)")
                _check_head(folder / e.texture, man, b"\x89PNG\r\n\x1a\n", "a PNG image")
            else:
                _check_glb(folder / e.file, man)
    if not entries:
        why = f" ({len(failures)} sources failed, see its failures)" if failures else ""
        raise InputError(man, f"the identity bank has no captured identity{why}")
    digest = hashlib.sha256(man.read_bytes()).hexdigest()
    return Bank(folder, entries, failures, options, digest)


def _is_photo(path: str) -> bool:
    from facexpr.io.images import is_image_path

    return is_image_path(Path(path))


def _capture_padded(path: str, options: Any) -> Any:
    """Captures a photo framed with a grey border of half its longer side on every side."""
    import numpy as np

    from facexpr.core.types import Frame
    from facexpr.io.images import read_image
    from facexpr.synth.capture import capture_frames

    img = read_image(path)
    pad = max(img.shape[:2]) // 2
    big = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), constant_values=128)
    note = ("no face found in the photo as it is; captured with a border around it",)
    return capture_frames([Frame(big, source=str(path))], path, options, notes=note)


def _capture_one(job: tuple[BankSource, BankOptions, str]) -> tuple[str, dict[str, Any]]:
    """Captures one source into ``folder``; returns ("ok", entry) or ("fail", failure)."""
    from facexpr.avatars.gltf import save_avatar_gltf
    from facexpr.avatars.texture import TextureOptions
    from facexpr.synth._bank_entry import save_compact_entry
    from facexpr.synth.capture import CaptureOptions, capture

    src, o, folder = job
    co = CaptureOptions(
        texture=TextureOptions(size=o.texture_size),
        frames=o.frames,
        sample_frames=max(48, o.frames),
        several=o.several,
        min_face_score=o.min_face_score,
        name=src.key,
    )
    try:
        try:
            r = capture(src.path, co)
        except InputError as e:
            if e.problem != "no face found" or not _is_photo(src.path):
                raise
            # The detector misses faces that fill the photo (tight crops such as UTKFace's):
            # try again with a border of half the photo's side around it.
            r = _capture_padded(src.path, co)
        if o.entry_format == "glb":
            save_avatar_gltf(r.avatar, Path(folder) / f"{src.key}.glb")
        else:
            save_compact_entry(r.avatar, Path(folder), src.key)
    except FacexprError as e:
        reason = e.problem if isinstance(e, InputError) else str(e)
        return "fail", asdict(BankFailure(src.path, src.person, reason, src.key))
    compact = o.entry_format == "compact"
    entry = BankEntry(
        file=f"{src.key}.npz" if compact else f"{src.key}.glb",
        person=src.person,
        source=src.path,
        residual=round(float(r.residual[0]), 5),
        tone=tuple(round(float(x), 4) for x in r.tone),  # type: ignore[arg-type]
        seen_fraction=round(float(r.seen_fraction), 4),
        notes=r.notes,
        texture=f"{src.key}.png" if compact else "",
    )
    d = asdict(entry)
    d["tone"], d["notes"] = list(entry.tone), list(entry.notes)
    if not compact:
        del d["texture"]
    return "ok", d


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _run(jobs: list[tuple[BankSource, BankOptions, str]], workers: int) -> Iterator[tuple]:
    if workers == 1 or len(jobs) <= 1:
        for j in jobs:
            yield _capture_one(j)
        return
    ctx = mp.get_context("spawn")
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})
    try:
        pool = ctx.Pool(workers, initializer=_worker_init)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pool:
        yield from pool.imap(_capture_one, jobs, chunksize=1)


def _entry_files_there(folder: Path, d: dict[str, Any]) -> bool:
    """True if the files of a manifest entry are in ``folder`` (else a rerun captures it again)."""
    if not (folder / str(d.get("file"))).is_file():
        return False
    return not str(d.get("file")).endswith(".npz") or (folder / str(d.get("texture"))).is_file()


def _write_manifest(path: Path, options: BankOptions, entries: list, failures: list) -> None:
    from facexpr.io._files import write_text_atomic

    data = {
        "format": FORMAT,
        "version": VERSION,
        "created_by": "facexpr.synth.bank.build_bank",
        "options": asdict(options),
        "entries": entries,
        "failures": failures,
    }
    write_text_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def build_bank(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    options: BankOptions | None = None,
    *,
    limit: int | None = None,
    workers: int = 1,
    retry_failed: bool = False,
    progress: bool = False,
) -> BankReport:
    """Captures every person of ``inputs`` into the bank folder ``out_dir``; returns a report.

    ``bank.json`` is rewritten (atomically) after every capture, so an interrupted run keeps what
    it captured and a rerun continues: sources already captured or failed are skipped.

    Args:
        inputs: photos, videos, folders, UTKFace roots (see :func:`list_bank_sources`).
        out_dir: the bank folder (created).
        options: see :class:`BankOptions`; a rerun must use the bank's own.
        limit: capture at most the first ``limit`` person-files of the inputs.
        workers: capturing processes (>= 1).
        retry_failed: capture the sources that failed before again.
        progress: a tqdm bar on stderr.

    Raises:
        ConfigError: bad ``workers``/``limit``, or options other than the bank's on a rerun.
        InputError: ``out_dir`` is not a folder, holds a damaged ``bank.json``, or another run is
            writing into it.
    """
    from facexpr.io._files import FolderLock

    o = options or BankOptions()
    if workers < 1:
        raise ConfigError(f"build_bank: workers must be >= 1, got {workers}")
    if limit is not None and limit < 1:
        raise ConfigError(f"build_bank: limit must be >= 1, got {limit}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "the identity bank folder is a file")
    t0 = time.perf_counter()
    report = BankReport(out)
    sources, problems = list_bank_sources(inputs, limit=limit)
    with FolderLock(out, "facexpr synth identities"):
        man = out / BANK_FILE
        entries: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        if man.is_file():
            data = _read_json(man)
            if _options_of(data) != asdict(o):
                raise ConfigError(
                    f"{man}: the bank was built with options {_options_of(data)}, this run "
                    f"has {asdict(o)}; use the same options or another folder"
                )
            entries = [d for d in data.get("entries", []) if _entry_files_there(out, d)]
            failures = [d for d in data.get("failures", []) if not retry_failed]
        done = {Path(str(d["file"])).stem for d in entries}
        done |= {str(d.get("key")) for d in failures}
        for p in problems:
            key = _safe(Path(str(p.path)).stem) if p.path else "input"
            if key in done:
                continue
            failures.append(asdict(BankFailure(str(p.path), "", p.problem, key)))
            report.failed.append(BankFailure(str(p.path), "", p.problem, key))
            done.add(key)
        todo = []
        for s in sources:
            if s.key in done:
                report.skipped.append(s.key)
            else:
                todo.append((s, o, str(out)))
        it: Any = _run(todo, workers)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(todo), desc="capture", unit="person")
        _write_manifest(man, o, entries, failures)
        for status, d in it:
            if status == "ok":
                entries.append(d)
                report.captured.append(Path(d["file"]).stem)
            else:
                failures.append(d)
                report.failed.append(BankFailure(**d))
                log.info("%s: %s", d["source"], d["reason"])
            _write_manifest(man, o, entries, failures)
    report.seconds = time.perf_counter() - t0
    return report


class BankAvatars:
    """The identities of a bank as textured avatars on one shared rig, loaded on demand.

    A compact entry is read as it is (its identity coefficients and texture). Every bank ``.glb``
    has the topology of the ICT FaceKit atlas rig
    (:func:`facexpr.avatars.texture.atlas_rig`): its neutral is the rig's mean face plus the
    identity modes, and its morph targets are the rig's (ICT's expression deltas do not depend on
    the identity). Each file's neutral is projected onto the identity modes (least squares; the
    remainder must be float round-off) so all identities share one rig, and the renderer builds
    its GPU buffers once. The last ``cache`` avatars loaded are kept.

    Args:
        bank: the bank.
        cache: avatars kept in memory (>= 1).

    Raises:
        MissingDependencyError: the ICT FaceKit asset is missing.
    """

    def __init__(self, bank: Bank, cache: int = 32) -> None:
        import numpy as np

        from facexpr.avatars.ict import load_ict
        from facexpr.avatars.texture import atlas_rig

        ict = load_ict()
        self.bank = bank
        self.rig = atlas_rig(ict)
        _, src = ict.split_uv_seams()
        # ICT vertex id -> its first copy in the atlas rig (seams duplicate vertices).
        first = np.full(ict.n_vertices, -1, np.int64)
        first[src[::-1]] = np.arange(len(src))[::-1]
        self.ict_to_atlas = first
        basis = self.rig.identity_matrix().astype(np.float64)
        self._basis = basis
        self._gram = basis @ basis.T
        self._cache: dict[int, Any] = {}
        self._size = max(1, int(cache))

    def avatar(self, k: int) -> Any:
        """Returns entry ``k`` as an :class:`~facexpr.avatars.avatar.Avatar` (cached).

        Raises:
            InputError: the ``.glb`` is missing, damaged, or not of the ICT FaceKit atlas
                topology (the message names the file).
        """
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        from facexpr.avatars.avatar import Avatar, Look

        entry = self.bank.entries[k]
        if entry.compact:
            from facexpr.synth._bank_entry import load_identity, load_texture

            z = load_identity(self.bank.path(entry), self.rig.n_identity)
            tex = load_texture(self.bank.folder / entry.texture)
            av = Avatar(entry.key, self.rig, identity=z, look=Look(lips=None), texture=tex)
        else:
            av = self._from_glb(k)
        if len(self._cache) >= self._size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[k] = av
        return av

    def _from_glb(self, k: int) -> Any:
        import numpy as np

        from facexpr.avatars.avatar import Avatar, Look
        from facexpr.avatars.gltf import load_gltf, load_gltf_texture

        path = self.bank.path(self.bank.entries[k])
        if not path.is_file():
            raise InputError(path, "listed in the identity bank but missing")
        glb = load_gltf(path)
        rig = self.rig
        why = "rebuild it with 'facexpr synth identities' or 'facexpr avatar capture'"
        if glb.n_vertices != rig.n_vertices or glb.channel_names != rig.channel_names:
            raise InputError(
                path, f"not a capture of the ICT FaceKit rig ({glb.n_vertices} vertices, "
                f"{glb.n_channels} morph targets; a capture has {rig.n_vertices} and "
                f"{rig.n_channels}); {why}",
            )  # fmt: skip
        d = (glb.neutral.astype(np.float64) - rig.neutral).reshape(-1)
        z = np.linalg.solve(self._gram, self._basis @ d)
        rest = np.abs(d - z @ self._basis).max()
        if not np.isfinite(rest) or rest > 0.05:  # cm; float32 round-off is ~1e-5
            raise InputError(
                path, f"its neutral face is not an ICT FaceKit identity (off by {rest:.2f} cm); "
                f"{why}",
            )  # fmt: skip
        tex = load_gltf_texture(path)
        if tex is None:
            raise InputError(path, f"has no texture; {why}")
        return Avatar(
            self.bank.entries[k].key, rig, identity=z.astype(np.float32), look=Look(lips=None),
            texture=tex.image,
        )  # fmt: skip


def export_entry_glb(bank: Bank, key: str, path: str | Path) -> Path:
    """Writes the glTF binary of the bank entry ``key`` (what ``facexpr avatar capture`` writes:
    the person's neutral face, the 53 morph targets, the texture), whatever its format.

    Returns:
        The written path.

    Raises:
        InputError: no entry ``key``, or its files are missing or damaged.
    """
    from facexpr.avatars.gltf import save_avatar_gltf

    av = BankAvatars(bank, cache=1).avatar(bank.index(key))
    return save_avatar_gltf(av, path)
