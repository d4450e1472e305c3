"""A glTF 2.0 / GLB file read defensively: every index, size and URI is checked before use.

glTF files come from users and from the web, so nothing in them is trusted (pygltflib is not used
for reading: it trusts the file). The checks, each an :class:`~facexpr.core.errors.InputError`
naming the file and the JSON path of the problem:

- the file and every buffer is a regular file (never a FIFO or a device) of bounded size;
- a buffer URI is a ``data:`` URI (base64, checked) or a relative file name resolved inside the
  glTF file's folder: never absolute, never a scheme (``file:``, ``http:``), never through
  ``..`` (also percent-encoded), never through a symbolic link that leads outside; and never more
  than the declared ``byteLength`` is read;
- every accessor's count, stride and offset fit in its bufferView, and every bufferView in its
  buffer, before anything is allocated; component types and element types are known ones;
- :data:`LIMITS` bound the vertices, morph targets and triangles of the whole scene.

Images (textures) are read by the same rules: from a bufferView, a ``data:`` URI or a file
inside the folder, never more than :attr:`Limits.file_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import struct
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facexpr.core.errors import InputError
from facexpr.io._checks import BadJSON, loads_json

_COMPONENT = {
    5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
    5126: np.float32,
}  # fmt: skip
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_GLB_MAGIC, _CHUNK_JSON, _CHUNK_BIN = b"glTF", 0x4E4F534A, 0x004E4942
# Required extensions that change no geometry (others, e.g. Draco compression, are refused).
_HARMLESS_EXTENSIONS = ("KHR_materials_", "KHR_texture_", "KHR_mesh_quantization")


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one glTF file may make facexpr allocate.

    Attributes:
        file_bytes: size of the .gltf/.glb file and of each buffer.
        json_bytes: size of the JSON part.
        accessor_elements: components of one accessor (count x components).
        vertices: vertices of the whole scene (after instancing).
        channels: distinct morph-target names.
        delta_bytes: bytes of the (channels, vertices, 3) float32 morph deltas.
        triangles: triangles of the whole scene.
        nodes: nodes of the file.
        primitives: mesh primitives of the whole scene (after instancing).
    """

    file_bytes: int = 1 << 30
    json_bytes: int = 64 << 20
    accessor_elements: int = 48_000_000
    vertices: int = 4_000_000
    channels: int = 1024
    delta_bytes: int = 1 << 30
    triangles: int = 8_000_000
    nodes: int = 100_000
    primitives: int = 100_000


LIMITS = Limits()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def read_regular_file(
    path: Path, limit: int, *, exact: int | None = None, owner: Path, inside: Path | None = None
) -> bytes:
    """Returns the bytes of a regular file, at most ``limit`` (or exactly ``exact``) of them.

    Opened without blocking (a FIFO never hangs) and checked with ``fstat`` after opening, so
    what is read is what was checked; with ``inside``, the opened file's real path is checked to
    lie in that folder (a link swapped in after the URI was resolved is caught). Errors name
    ``owner`` (the glTF file).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if path != owner:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    what = "the file" if path == owner else f"buffer file '{path.name}'"
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise InputError(owner, f"cannot open {what} ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if inside is not None and os.path.exists(f"/proc/self/fd/{fd}"):
            real = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if not real.is_relative_to(inside):
                raise InputError(owner, f"{what} leads outside the glTF file's folder")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(owner, f"{what} is not a regular file")
        want = exact if exact is not None else min(st.st_size, limit) + 1
        if st.st_size > limit and exact is None:
            raise InputError(owner, f"{what} is {st.st_size} bytes, more than the {limit} allowed")
        chunks, got = [], 0
        while got < want:
            b = os.read(fd, min(want - got, 1 << 24))
            if not b:
                break
            chunks.append(b)
            got += len(b)
    except OSError as e:
        raise InputError(owner, f"cannot read {what} ({e.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if exact is not None and len(data) < exact:
        raise InputError(owner, f"{what} has {len(data)} bytes, its byteLength says {exact}")
    if exact is None and len(data) > limit:
        raise InputError(owner, f"{what} is more than the {limit} bytes allowed")
    return data


@dataclass(frozen=True)
class AccessorInfo:
    """An accessor's checked layout (nothing read yet)."""

    index: int
    type: str
    n: int
    dtype: np.dtype
    count: int
    normalized: bool


class GltfDoc:
    """A parsed glTF file whose parts are checked as they are used.

    Args:
        path: the .gltf or .glb file.
        limits: the bounds to enforce.

    Raises:
        InputError: the file is not a readable glTF 2.0 file.
    """

    def __init__(self, path: Path, limits: Limits = LIMITS) -> None:
        self.path = path
        self.limits = limits
        data = read_regular_file(path, limits.file_bytes, owner=path)
        if not data:
            self.fail("empty file (0 bytes)")
        self.bin: bytes | None = None
        if data[:4] == _GLB_MAGIC:
            text = self._parse_glb(data)
        else:
            if len(data) > limits.json_bytes:
                self.fail(f"the JSON is more than {limits.json_bytes} bytes")
            text = data
        try:
            doc = loads_json(text.removeprefix(b"\xef\xbb\xbf"), parse_constant=_reject_constant)
        except BadJSON as e:
            self.fail(f"cannot parse glTF ({e})")
        if not isinstance(doc, dict):
            self.fail("cannot parse glTF (the JSON is not an object)")
        self.json: dict[str, Any] = doc
        asset = doc.get("asset")
        version = asset.get("version") if isinstance(asset, dict) else None
        if not isinstance(version, str) or not version.startswith("2."):
            self.fail(f"not a glTF 2.0 file (asset.version is {version!r})")
        for ext in self.get_list(doc, "extensionsRequired", "extensionsRequired"):
            if not isinstance(ext, str) or not ext.startswith(_HARMLESS_EXTENSIONS):
                self.fail(f"needs the glTF extension {ext!r}, which facexpr cannot read")
        if len(self.get_list(doc, "nodes", "nodes")) > limits.nodes:
            self.fail(f"more than {limits.nodes} nodes")
        self._buffers: dict[int, bytes] = {}

    # ------------------------------------------------------------------ errors and fields
    def fail(self, problem: str) -> Any:
        """Raises the InputError of ``problem`` in this file."""
        raise InputError(self.path, problem)

    def get_list(self, obj: dict, key: str, where: str) -> list:
        """Returns ``obj[key]`` as a list (empty when absent)."""
        v = obj.get(key, [])
        if not isinstance(v, list):
            self.fail(f"{where} must be a list, got {type(v).__name__}")
        return v

    def item(self, top: str, i: Any) -> dict:
        """Returns ``json[top][i]``, an object, checking the index."""
        items = self.get_list(self.json, top, top)
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(items):
            self.fail(f"{top}[{i!r}] does not exist ({len(items)} {top})")
        obj = items[i]
        if not isinstance(obj, dict):
            self.fail(f"{top}[{i}] must be an object")
        return obj

    def get_int(self, obj: dict, key: str, where: str, *, default: int | None = None,
            lo: int = 0, hi: int | None = None) -> int:  # fmt: skip
        """Returns the integer ``obj[key]`` in [lo, hi]."""
        v = obj.get(key, default)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(f"{where}.{key} must be an integer, got {v!r}")
        if v < lo or (hi is not None and v > hi):
            bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            self.fail(f"{where}.{key} must be {bound}, got {v}")
        return v

    def numbers(self, obj: dict, key: str, where: str, n: int) -> list[float] | None:
        """Returns ``obj[key]``, a list of ``n`` finite numbers, or None when absent."""
        v = obj.get(key)
        if v is None:
            return None
        ok = isinstance(v, list) and len(v) == n
        ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        if not ok or not np.isfinite(np.asarray(v, np.float64)).all():
            self.fail(f"{where}.{key} must be {n} finite numbers")
        return [float(x) for x in v]

    # ------------------------------------------------------------------ container
    def _parse_glb(self, data: bytes) -> bytes:
        if len(data) < 20:
            self.fail("cannot parse glTF (GLB shorter than its header)")
        _, version, length = struct.unpack_from("<4sII", data, 0)
        if version != 2:
            self.fail(f"GLB version {version}, only glTF 2.0 is supported")
        if length > len(data):
            self.fail(f"GLB header says {length} bytes, the file has {len(data)} (truncated)")
        text: bytes | None = None
        off = 12
        while off + 8 <= length:
            clen, ctype = struct.unpack_from("<II", data, off)
            start, end = off + 8, off + 8 + clen
            if end > length:
                self.fail(f"GLB chunk at byte {off} claims {clen} bytes, past the file's end")
            if text is None:
                if ctype != _CHUNK_JSON:
                    self.fail("GLB's first chunk is not JSON")
                if clen > self.limits.json_bytes:
                    self.fail(f"the JSON is more than {self.limits.json_bytes} bytes")
                text = data[start:end]
            elif ctype == _CHUNK_BIN and self.bin is None:
                self.bin = data[start:end]
            off = end
        if text is None:
            self.fail("cannot parse glTF (GLB has no JSON chunk)")
        return text

    # ------------------------------------------------------------------ buffers
    def buffer(self, i: int) -> bytes:
        """Returns the bytes of buffer ``i``, exactly its ``byteLength``."""
        if i in self._buffers:
            return self._buffers[i]
        buf = self.item("buffers", i)
        where = f"buffers[{i}]"
        length = self.get_int(buf, "byteLength", where, lo=1, hi=self.limits.file_bytes)
        uri = buf.get("uri")
        if uri is None:
            if i != 0 or self.bin is None:
                self.fail(f"{where} has no uri and the file has no GLB binary chunk")
            if len(self.bin) < length:
                self.fail(f"{where}.byteLength is {length}, the GLB binary chunk has "
                          f"{len(self.bin)} bytes")  # fmt: skip
            data = self.bin[:length]
        elif not isinstance(uri, str) or not uri:
            self.fail(f"{where}.uri must be a non-empty string")
        elif uri.startswith("data:"):
            data = self._data_uri(uri, length, where)
        else:
            data = read_regular_file(
                self._confined(uri, where), length, exact=length, owner=self.path,
                inside=self.path.parent.resolve(),
            )  # fmt: skip
        self._buffers[i] = data
        return data

    def _data_uri(self, uri: str, length: int, where: str) -> bytes:
        head, sep, payload = uri.partition(",")
        if not sep or not head.endswith(";base64"):
            self.fail(f"{where}.uri: only base64 data: URIs are supported")
        # Decode no more than byteLength needs (4 characters per 3 bytes).
        need = -(-length // 3) * 4
        if len(payload) < need:
            self.fail(f"{where}.uri: data holds fewer than the {length} bytes of byteLength")
        try:
            data = base64.b64decode(payload[:need], validate=True)
        except (binascii.Error, ValueError) as e:
            self.fail(f"{where}.uri: bad base64 data ({e})")
        if len(data) < length:
            self.fail(f"{where}.uri: data holds {len(data)} bytes, byteLength says {length}")
        return data[:length]

    def _confined(self, uri: str, where: str) -> Path:
        """Returns the real path of a relative URI, checked to lie inside the file's folder."""
        rel = urllib.parse.unquote(uri)
        if "\x00" in rel:
            self.fail(f"{where}.uri has a NUL character")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", rel):
            self.fail(f"{where}.uri '{uri}': only relative file names and data: URIs are allowed")
        if rel.startswith(("/", "\\")):
            self.fail(f"{where}.uri '{uri}' is an absolute path; only files beside the glTF "
                      "file are read")  # fmt: skip
        if ".." in re.split(r"[/\\]", rel):
            self.fail(f"{where}.uri '{uri}' goes up a folder ('..'); only files beside the glTF "
                      "file are read")  # fmt: skip
        base = self.path.parent.resolve()
        try:
            target = (base / rel).resolve()
        except (OSError, RuntimeError) as e:
            self.fail(f"{where}.uri '{uri}' cannot be resolved ({e})")
        if not target.is_relative_to(base):
            self.fail(f"{where}.uri '{uri}' leads outside the glTF file's folder (through a "
                      "symbolic link)")  # fmt: skip
        return target

    def image(self, i: int) -> bytes:
        """Returns the encoded bytes of ``images[i]`` (bufferView, data: URI or a file beside)."""
        img = self.item("images", i)
        where = f"images[{i}]"
        if img.get("bufferView") is not None:
            data, off, length, _ = self.view(self.get_int(img, "bufferView", where))
            return data[off : off + length]
        uri = img.get("uri")
        if not isinstance(uri, str) or not uri:
            self.fail(f"{where} has neither a bufferView nor a uri")
        if uri.startswith("data:"):
            head, sep, payload = uri.partition(",")
            if not sep or not head.endswith(";base64"):
                self.fail(f"{where}.uri: only base64 data: URIs are supported")
            if len(payload) > self.limits.file_bytes // 3 * 4 + 4:
                self.fail(f"{where}.uri: more than the {self.limits.file_bytes} bytes allowed")
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError) as e:
                self.fail(f"{where}.uri: bad base64 data ({e})")
        target = self._confined(uri, where)
        return read_regular_file(
            target, self.limits.file_bytes, owner=self.path, inside=self.path.parent.resolve()
        )

    # ------------------------------------------------------------------ views and accessors
    def view(self, i: int) -> tuple[bytes, int, int, int | None]:
        """Returns (buffer bytes, byte offset, byte length, byte stride or None) of a view."""
        view = self.item("bufferViews", i)
        where = f"bufferViews[{i}]"
        b = self.get_int(view, "buffer", where)
        data = self.buffer(b)
        off = self.get_int(view, "byteOffset", where, default=0)
        length = self.get_int(view, "byteLength", where, lo=1)
        if off + length > len(data):
            self.fail(f"{where}: bytes {off}..{off + length} pass the end of buffers[{b}] "
                      f"({len(data)} bytes)")  # fmt: skip
        stride = view.get("byteStride")
        if stride is not None:
            stride = self.get_int(view, "byteStride", where, lo=4, hi=252)
            if stride % 4:
                self.fail(f"{where}.byteStride must be a multiple of 4, got {stride}")
        return data, off, length, stride

    def info(self, i: Any, what: str, types: tuple[str, ...]) -> AccessorInfo:
        """Returns the checked layout of accessor ``i`` used as ``what`` (nothing read)."""
        acc = self.item("accessors", i)
        where = f"accessors[{i}] ({what})"
        ctype = acc.get("componentType")
        if ctype not in _COMPONENT or isinstance(ctype, bool):
            self.fail(f"{where}: unknown componentType {ctype!r}")
        kind = acc.get("type")
        if not isinstance(kind, str) or kind not in _NCOMP:
            self.fail(f"{where}: unknown type {kind!r}")
        if kind not in types:
            self.fail(f"{where}: type must be {' or '.join(types)}, got {kind}")
        n = _NCOMP[kind]
        count = self.get_int(acc, "count", where, lo=1, hi=self.limits.accessor_elements // n)
        normalized = acc.get("normalized", False)
        if not isinstance(normalized, bool):
            self.fail(f"{where}.normalized must be true or false")
        return AccessorInfo(i, kind, n, np.dtype(_COMPONENT[ctype]), count, normalized)

    def _read(self, view_i: Any, off: int, dtype: np.dtype, n: int, count: int,
              where: str) -> np.ndarray:  # fmt: skip
        data, start, length, stride = self.view(view_i)
        item = dtype.itemsize * n
        stride = stride or item
        if stride < item:
            self.fail(f"{where}: byteStride {stride} is smaller than one element ({item} bytes)")
        need = off + stride * (count - 1) + item
        if need > length:
            self.fail(f"{where}: {count} elements of {item} bytes (stride {stride}) from offset "
                      f"{off} need {need} bytes, bufferViews[{view_i}] has {length}")  # fmt: skip
        if stride == item:
            return np.frombuffer(data, dtype, count * n, start + off).reshape(count, n)
        raw = np.frombuffer(data, np.uint8, need - off, start + off)
        rows = np.lib.stride_tricks.as_strided(raw, (count, item), (stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(count, n)

    def accessor(self, i: Any, what: str, types: tuple[str, ...]) -> np.ndarray:
        """Returns accessor ``i`` as a (count, components) array, every size checked first.

        Normalized integers become float32 in [0, 1] (or [-1, 1]); float data must be finite.
        """
        a = self.info(i, what, types)
        acc = self.json["accessors"][i]
        where = f"accessors[{i}] ({what})"
        if acc.get("bufferView") is None:
            out = np.zeros((a.count, a.n), a.dtype)
        else:
            off = self.get_int(acc, "byteOffset", where, default=0)
            out = self._read(acc["bufferView"], off, a.dtype, a.n, a.count, where)
        sparse = acc.get("sparse")
        if sparse is not None:
            out = self._sparse(out.copy(), sparse, a, where)
        if a.normalized and a.dtype.kind in "iu":
            out = np.maximum(out.astype(np.float32) / np.iinfo(a.dtype).max, -1.0)
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            row = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            self.fail(f"{where}: element {row} is not finite (NaN or infinity)")
        return out

    def _sparse(self, out: np.ndarray, sp: Any, a: AccessorInfo, where: str) -> np.ndarray:
        if not isinstance(sp, dict):
            self.fail(f"{where}.sparse must be an object")
        count = self.get_int(sp, "count", f"{where}.sparse", lo=1, hi=a.count)
        ind, val = sp.get("indices"), sp.get("values")
        if not isinstance(ind, dict) or not isinstance(val, dict):
            self.fail(f"{where}.sparse needs indices and values objects")
        ictype = ind.get("componentType")
        if ictype not in (5121, 5123, 5125) or isinstance(ictype, bool):
            self.fail(f"{where}.sparse.indices: componentType must be an unsigned integer type, "
                      f"got {ictype!r}")  # fmt: skip
        idt = np.dtype(_COMPONENT[ictype])
        ioff = self.get_int(ind, "byteOffset", f"{where}.sparse.indices", default=0)
        idx = self._read(ind.get("bufferView"), ioff, idt, 1, count, f"{where}.sparse.indices")
        idx = idx.reshape(-1).astype(np.int64)
        if idx.size and idx.max() >= a.count:
            self.fail(f"{where}.sparse.indices: index {int(idx.max())} >= count {a.count}")
        voff = self.get_int(val, "byteOffset", f"{where}.sparse.values", default=0)
        vals = self._read(val.get("bufferView"), voff, a.dtype, a.n, count,
                          f"{where}.sparse.values")  # fmt: skip
        out[idx] = vals
        return out
