"""Hostile dataset folders for ``facexpr dataset info`` and ``dataset show``: manifests nested
100,000 deep or of the wrong types, shards named outside the folder (``../``, absolute, symlinks),
sha256 mismatches, PNG bombs as members, sample JSON of the wrong shape.

The good dataset these start from is written here with the standard library (tar, JSON, sha256)
in the layout of ``facexpr.io.shards``; ``dataset-control-good`` checks that it still is one."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus import Case, CaseDirs, Run, Setup, png_bomb, png_bytes

FIELDS = [
    {"name": "arkit", "shape": [52], "dtype": "float32", "description": "ARKit weights"},
    {"name": "emotion", "shape": [], "dtype": "str", "description": "emotion name"},
]


def sample_members(key: str, *, labels: Any = None, meta: Any = None, png: bytes | None = None):
    """Returns the (name, bytes) tar members of one sample."""
    if meta is None:
        meta = {
            "key": key,
            "source": "hostile",
            "subject_id": f"s{key}",
            "provenance": {},
            "labels": {"arkit": [0.1] * 52, "emotion": "happiness"} if labels is None else labels,
        }
    body = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return [(f"{key}.png", png if png is not None else png_bytes(32, 32)), (f"{key}.json", body)]


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """Returns a USTAR tar of the members (no times or owners, as ShardWriter writes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def manifest(shards: list[tuple[str, bytes, int]], **over: Any) -> dict[str, Any]:
    """Returns a manifest listing ``shards`` ((name, bytes, n_samples) each)."""
    m: dict[str, Any] = {
        "format": "facexpr-shards",
        "schema_version": 1,
        "created_by": "hostile corpus",
        "n_samples": sum(n for _, _, n in shards),
        "n_shards": len(shards),
        "image": {"file": "png", "mode": "RGB"},
        "fields": copy.deepcopy(FIELDS),
        "shards": [
            {
                "name": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "n_samples": n,
                "n_bytes": len(data),
            }
            for name, data, n in shards
        ],
        "splits": {"train": ["s000000"]},
        "attributes": {},
    }
    m.update(over)
    return m


def write_dataset(
    folder: Path,
    members: list[tuple[str, bytes]] | None = None,
    *,
    n: int = 2,
    edit: Callable[[dict[str, Any]], Any] | None = None,
) -> Path:
    """Writes a dataset folder (one shard) and returns it; ``edit`` changes the manifest dict (or
    returns a replacement, str or bytes, for manifest.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    if members is None:
        members = [m for k in range(n) for m in sample_members(f"{k:06d}")]
    data = tar_bytes(members)
    (folder / "shard-000000.tar").write_bytes(data)
    m = manifest([("shard-000000.tar", data, n)])
    out = edit(m) if edit is not None else None
    out = m if out is None else out
    text = out if isinstance(out, (str, bytes)) else json.dumps(out, indent=1)
    (folder / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def secret_shard(dirs: CaseDirs) -> tuple[Path, bytes]:
    """Writes a valid shard holding the canary token into the canary folder; returns it."""
    meta = {
        "key": "000000",
        "source": dirs.token,
        "subject_id": dirs.token,
        "provenance": {"secret": dirs.token},
        "labels": {"emotion": dirs.token},
    }
    data = tar_bytes(sample_members("000000", meta=meta))
    p = dirs.canary / "secret.tar"
    p.write_bytes(data)
    return p, data


def command(dirs: CaseDirs, folder: Path, which: str) -> list[str]:
    """Returns the ``dataset info`` or ``dataset show`` arguments for ``folder``."""
    if which == "info":
        return ["dataset", "info", str(folder)]
    return ["dataset", "show", str(folder), "-o", str(dirs.out / "sheet.png"), "-n", "4"]


def ds_case(
    name: str,
    problem: str,
    *,
    edit: Callable[[dict[str, Any]], Any] | None = None,
    members: Callable[[CaseDirs], list[tuple[str, bytes]]] | None = None,
    target: str = "manifest.json",
    which: str = "info",
    names: str | None = None,
    **kw: Any,
) -> Case:
    """A case running ``dataset WHICH`` on a dataset changed by ``edit`` / ``members``; the error
    must name ``target`` (a file of the dataset folder), or match ``names``."""

    def build(dirs: CaseDirs) -> Setup:
        folder = write_dataset(dirs.inp / "ds", members(dirs) if members else None, edit=edit)
        return Setup(command(dirs, folder, which), folder / target, names=names)

    return Case(
        name=f"dataset-{which}-{name}", family="dataset", build=build, problem=problem, **kw
    )


def custom_case(name: str, build: Callable[[CaseDirs], Setup], problem: str, **kw: Any) -> Case:
    return Case(name=f"dataset-{name}", family="dataset", build=build, problem=problem, **kw)


# ---- manifest edits


def _nested(depth: int) -> Callable[[dict[str, Any]], str]:
    return lambda m: "[" * depth + "]" * depth


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        m[key] = value

    return edit


def _shard_entry(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        m["shards"][0][key] = value

    return edit


def _huge_int(m: dict[str, Any]) -> str:
    text = json.dumps(m)
    return text.replace('"n_samples": 2', '"n_samples": 1' + "0" * 5000, 1)


# ---- builds that point outside the folder


def _outside(kind: str, which: str) -> Callable[[CaseDirs], Setup]:
    def build(dirs: CaseDirs) -> Setup:
        secret, data = secret_shard(dirs)
        folder = dirs.inp / "ds"
        folder.mkdir()
        if kind == "dotdot":
            name = "../../canary/secret.tar"
        elif kind == "absolute":
            name = str(secret)
        else:  # a link inside the folder to the secret shard
            name = "shard-000000.tar"
            os.symlink(secret, folder / name)
        m = manifest([(name, data, 1)])
        (folder / "manifest.json").write_text(json.dumps(m))
        return Setup(
            command(dirs, folder, which),
            folder / "manifest.json",
            names=r"manifest\.json|shard-000000\.tar|secret\.tar",
        )

    return build


def _sha_mismatch(which: str) -> Callable[[CaseDirs], Setup]:
    def build(dirs: CaseDirs) -> Setup:
        folder = write_dataset(dirs.inp / "ds")
        shard = folder / "shard-000000.tar"
        data = bytearray(shard.read_bytes())
        data[600] ^= 0x55
        shard.write_bytes(bytes(data))
        return Setup(command(dirs, folder, which), shard)

    return build


def _shard_rewrite(fn: Callable[[bytes], bytes]) -> Callable[[CaseDirs], Setup]:
    """A shard changed by ``fn`` with its manifest entry updated to match (sha256 passes)."""

    def build(dirs: CaseDirs) -> Setup:
        folder = dirs.inp / "ds"
        folder.mkdir()
        good = tar_bytes([m for k in range(2) for m in sample_members(f"{k:06d}")])
        data = fn(good)
        (folder / "shard-000000.tar").write_bytes(data)
        (folder / "manifest.json").write_text(json.dumps(manifest([("shard-000000.tar", data, 2)])))
        return Setup(command(dirs, folder, "info"), folder / "shard-000000.tar")

    return build


def _tar_with_links(dirs: CaseDirs) -> list[tuple[str, bytes]]:
    return sample_members("000000")  # the link members are added by _link_shard


def _link_shard(dirs: CaseDirs) -> Setup:
    folder = dirs.inp / "ds"
    folder.mkdir()
    buf = io.BytesIO()
    # GNU format: the canary's absolute path may pass USTAR's 100-byte link names.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for target, name in ((str(dirs.canary_file), "000000.png"), ("/etc/passwd", "000000.json")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    data = buf.getvalue()
    (folder / "shard-000000.tar").write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(manifest([("shard-000000.tar", data, 1)])))
    return Setup(
        command(dirs, folder, "info"), folder / "shard-000000.tar", forbidden=("/etc/passwd",)
    )


def _control_post(dirs: CaseDirs, run: Run) -> list[str]:
    return [] if '"n_samples": 2' in run.stdout else ["dataset info did not count 2 samples"]


def _control(dirs: CaseDirs) -> Setup:
    folder = write_dataset(dirs.inp / "ds")
    return Setup(command(dirs, folder, "info"), folder)


def _missing_manifest(dirs: CaseDirs) -> Setup:
    folder = write_dataset(dirs.inp / "ds")
    (folder / "manifest.json").unlink()
    return Setup(command(dirs, folder, "info"), folder / "manifest.json")


def _manifest_is_dir(dirs: CaseDirs) -> Setup:
    folder = write_dataset(dirs.inp / "ds")
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").mkdir()
    return Setup(command(dirs, folder, "info"), folder / "manifest.json")


def _dir_is_file(dirs: CaseDirs) -> Setup:
    p = dirs.inp / "ds"
    p.write_text("not a folder\n")
    return Setup(command(dirs, p, "info"), p)


def _fifo_manifest(dirs: CaseDirs) -> Setup:
    folder = dirs.inp / "ds"
    folder.mkdir()
    os.mkfifo(folder / "manifest.json")
    return Setup(command(dirs, folder, "info"), folder / "manifest.json")


def _bomb_members(dirs: CaseDirs) -> list[tuple[str, bytes]]:
    return sample_members("000000", png=png_bomb(16_000)) + sample_members("000001")


def _labels(value: Any) -> Callable[[CaseDirs], list[tuple[str, bytes]]]:
    return lambda dirs: sample_members("000000", labels=value) + sample_members("000001")


def _meta(value: Any) -> Callable[[CaseDirs], list[tuple[str, bytes]]]:
    return lambda dirs: sample_members("000000", meta=value) + sample_members("000001")


def _member_named(name: str) -> Callable[[CaseDirs], list[tuple[str, bytes]]]:
    def members(dirs: CaseDirs) -> list[tuple[str, bytes]]:
        png, meta = sample_members("000000")
        return [(name, png[1]), meta, *sample_members("000001")]

    return members


_IN_DS = r"manifest\.json|in/ds\b"  # the manifest, or the shard entry it names
_MANIFEST = r"manifest|corrupt|not valid JSON|too deep|nest"
_OUTSIDE = r"outside|not inside|escapes|symbolic link|symlink|absolute|\.\."
_SAMPLE = r"sample|label|json|corrupt"

CASES: list[Case] = [
    Case(
        "dataset-control-good",
        "dataset",
        _control,
        r".",
        expect_rc=(0,),
        post=_control_post,
        note="control: the base dataset the other cases break is read (exit 0)",
    ),
    ds_case(
        "nested-100k",
        _MANIFEST,
        edit=_nested(100_000),
        note="json.loads recursion on a 200 KB manifest",
    ),
    ds_case("nested-100k", _MANIFEST, edit=_nested(100_000), which="show"),
    ds_case(
        "nested-object-100k", _MANIFEST, edit=lambda m: '{"a":' * 100_000 + "1" + "}" * 100_000
    ),
    ds_case("splits-list", r"splits", edit=_set("splits", ["train", "test"])),
    ds_case("splits-list", r"splits", edit=_set("splits", ["train", "test"]), which="show"),
    ds_case("shards-string", r"shards", edit=_set("shards", "shard-000000.tar")),
    ds_case("shards-null", r"shards", edit=_set("shards", None)),
    ds_case("fields-dict", r"fields", edit=_set("fields", {"arkit": 52})),
    ds_case(
        "field-shape-text", r"shape|fields|arkit", edit=lambda m: m["fields"][0].update(shape="x")
    ),
    ds_case(
        "field-shape-negative",
        r"shape|fields|arkit|negative",
        edit=lambda m: m["fields"][0].update(shape=[-52]),
    ),
    ds_case("n-samples-text", r"n_samples", edit=_set("n_samples", "many")),
    ds_case("n-samples-5000-digits", _MANIFEST + r"|n_samples|digits", edit=_huge_int),
    ds_case("manifest-list", _MANIFEST, edit=lambda m: [m]),
    ds_case("manifest-empty", _MANIFEST + r"|empty", edit=lambda m: b""),
    ds_case("manifest-binary", _MANIFEST, edit=lambda m: bytes(range(256)) * 8),
    ds_case(
        "shard-name-nul",
        r"shard|name|null",
        edit=_shard_entry("name", "shard\u0000.tar"),
        names=_IN_DS,
    ),
    ds_case("shard-name-empty", r"shard|name", edit=_shard_entry("name", ""), names=_IN_DS),
    ds_case(
        "shard-name-dot", r"shard|name|directory", edit=_shard_entry("name", "."), names=_IN_DS
    ),
    ds_case("shard-sha-number", r"sha256|shard", edit=_shard_entry("sha256", 12345), names=_IN_DS),
    custom_case(
        "info-shard-dotdot",
        _outside("dotdot", "info"),
        _OUTSIDE,
        note="a shard named ../../canary/secret.tar with its right sha256",
    ),
    custom_case("show-shard-dotdot", _outside("dotdot", "show"), _OUTSIDE),
    custom_case("info-shard-absolute", _outside("absolute", "info"), _OUTSIDE),
    custom_case("show-shard-absolute", _outside("absolute", "show"), _OUTSIDE),
    custom_case(
        "info-shard-symlink-out",
        _outside("link", "info"),
        _OUTSIDE,
        note="shard-000000.tar is a link to a valid shard outside the folder",
    ),
    custom_case("show-shard-symlink-out", _outside("link", "show"), _OUTSIDE),
    custom_case("info-sha-mismatch", _sha_mismatch("info"), r"sha256|checksum|corrupt"),
    custom_case("show-sha-mismatch", _sha_mismatch("show"), r"sha256|checksum|corrupt"),
    custom_case(
        "info-shard-truncated",
        _shard_rewrite(lambda b: b[: len(b) * 3 // 10]),
        r"corrupt|truncated|tar|lacks|samples?",
    ),
    custom_case(
        "info-shard-not-tar",
        _shard_rewrite(lambda b: b"hello\n" * 300),
        r"corrupt|not a (readable )?tar|tar",
    ),
    custom_case(
        "info-shard-size-lie",
        _shard_rewrite(lambda b: b[:124] + b"77777777777\0" + b[136:]),
        r"corrupt|truncated|tar|checksum",
    ),
    custom_case(
        "info-tar-link-members",
        _link_shard,
        r"link|lacks|not a (regular )?file|member|samples?",
        note="members that are links to the canary and /etc/passwd",
    ),
    custom_case("info-missing-manifest", _missing_manifest, r"missing|not a facexpr dataset"),
    custom_case("info-manifest-is-dir", _manifest_is_dir, r"manifest|directory|not a file"),
    custom_case("info-dir-is-file", _dir_is_file, r"not a (folder|directory)|missing"),
    custom_case(
        "info-manifest-fifo",
        _fifo_manifest,
        r"not a (regular|plain) file|fifo|special",
        timeout_s=15,
    ),
    ds_case(
        "png-bomb-member",
        r"too (large|big)|at most|px|bomb|image",
        members=_bomb_members,
        target="shard-000000.tar",
        which="show",
        note="a 256 KB PNG member that decodes to 768 MB",
    ),
    ds_case(
        "png-bomb-member",
        r"too (large|big)|at most|px|bomb|image",
        members=_bomb_members,
        target="shard-000000.tar",
    ),
    ds_case(
        "sample-json-list", _SAMPLE, members=_meta(["000000", "hostile"]), target="shard-000000.tar"
    ),
    ds_case(
        "sample-json-nested",
        _SAMPLE + r"|deep|nest",
        members=_meta(b"[" * 100_000 + b"]" * 100_000),
        target="shard-000000.tar",
    ),
    ds_case("labels-list", _SAMPLE, members=_labels([0.1] * 52), target="shard-000000.tar"),
    ds_case(
        "label-wrong-shape",
        r"arkit|shape",
        members=_labels({"arkit": [0.1, 0.2, 0.3]}),
        target="shard-000000.tar",
    ),
    ds_case(
        "label-wrong-type",
        r"arkit|float|number|type",
        members=_labels({"arkit": "lots"}),
        target="shard-000000.tar",
    ),
    ds_case(
        "label-str-field-dict",
        r"emotion|str|type",
        members=_labels({"emotion": {"a": 1}}),
        target="shard-000000.tar",
    ),
    ds_case(
        "member-dotdot-name",
        r"member|key|name|\.\.|lacks",
        target="shard-000000.tar",
        members=_member_named("../../escape.png"),
    ),
    ds_case(
        "member-not-png",
        r"png|image|not a readable",
        target="shard-000000.tar",
        members=lambda dirs: sample_members("000000", png=b"GIF89a not a png"),
    ),
]
