"""Compact identity bank entries (identity coefficients .npz + texture .png) against .glb ones."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.shards import ShardDataset
from facexpr.synth import SynthOptions, generate
from facexpr.synth.bank import BankAvatars, BankOptions, build_bank, load_bank

pytest.importorskip("moderngl", reason="rendering needs moderngl")

FACE = "single_face.jpg"
KEY = Path(FACE).stem


def _synth(bank: Path, **kw: object) -> SynthOptions:
    base = SynthOptions(
        avatars=(), identity_bank=str(bank), n=4, size=64, render_size=96, seed=5,
        samples_per_shard=4, identity_block=2,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def banks(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same person captured into a compact bank (the default) and a glb bank (via the CLI)."""
    from facexpr.cli.main import main

    root = tmp_path_factory.mktemp("banks")
    compact, glb = root / "compact", root / "glb"
    build_bank([media_dir / FACE], compact, BankOptions(texture_size=64))
    code = main(["-q", "synth", "identities", str(media_dir / FACE), "-o", str(glb),
                 "--texture-size", "64", "--format", "glb"])  # fmt: skip
    assert code == 0
    return compact, glb


def _copy(d: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(d, out, ignore=shutil.ignore_patterns(".facexpr.lock"))
    return out


def test_compact_entry_rebuilds_the_captured_mesh(banks) -> None:
    from facexpr.avatars.avatar import get_avatar
    from facexpr.avatars.gltf import load_gltf
    from facexpr.avatars.ict import load_ict

    compact, glb = banks
    bc, bg = load_bank(compact), load_bank(glb)
    assert [p.name for p in sorted(compact.iterdir()) if not p.name.startswith(".")] == [
        "bank.json", f"{KEY}.npz", f"{KEY}.png",
    ]  # fmt: skip
    assert [p.name for p in sorted(glb.iterdir()) if not p.name.startswith(".")] == [
        "bank.json", f"{KEY}.glb",
    ]  # fmt: skip
    av = BankAvatars(bc).avatar(0)
    # The .glb holds the capture's own mesh: neutral and the 53 morph targets.
    captured = load_gltf(bg.path(bg.entries[0]))
    assert captured.channel_names == av.rig.channel_names
    np.testing.assert_allclose(av.base, captured.neutral, atol=1e-4)  # cm, float32 round-off
    np.testing.assert_allclose(av.rig.deltas, captured.deltas, atol=1e-5)
    # The plain ICT avatar at these coefficients is the same face (the atlas rig splits its UV
    # seams, so a vertex of ICT can have several copies).
    _, src = load_ict().split_uv_seams()
    plain = get_avatar("ict", identity=av.identity).base
    np.testing.assert_allclose(plain[src], av.base, atol=1e-5)
    assert np.abs(av.base).max() > 1.0  # a real face, not zeros
    assert (av.texture == BankAvatars(bg).avatar(0).texture).all()  # PNG both ways: lossless


def test_compact_and_glb_entries_render_the_same_pixels(banks, tmp_path: Path) -> None:
    compact, glb = banks
    generate(_synth(compact), tmp_path / "c")
    generate(_synth(glb), tmp_path / "g")
    a = [s.image.astype(np.int16) for s in ShardDataset(tmp_path / "c", shuffle_buffer=0)]
    b = [s.image.astype(np.int16) for s in ShardDataset(tmp_path / "g", shuffle_buffer=0)]
    assert len(a) == len(b) == 4
    diff = np.abs(np.stack(a) - np.stack(b))
    # The glb's identity is solved back from its float32 neutral (~1e-7 off): at most one grey
    # level on a few edge pixels.
    assert diff.max() <= 2
    assert diff.mean() < 0.01
    assert np.stack(a).std() > 10  # faces were drawn


def test_a_version_1_glb_bank_still_loads_and_resumes(banks, media_dir: Path, tmp_path) -> None:
    from facexpr.cli.main import main

    d = _copy(banks[1], tmp_path)
    man = d / "bank.json"
    data = json.loads(man.read_text())
    data["version"] = 1
    del data["options"]["entry_format"]  # what version 1 wrote
    for e in data["entries"]:
        e.pop("texture", None)
    man.write_text(json.dumps(data))
    b = load_bank(d)
    assert b.options.entry_format == "glb"
    assert BankAvatars(b).avatar(0).texture.shape == (64, 128, 3)
    # A rerun without --format keeps the bank's format: nothing captured again.
    code = main(["-q", "synth", "identities", str(media_dir / FACE), "-o", str(d), "--texture-size",
                 "64"])  # fmt: skip
    assert code == 0
    assert not list(d.glob("*.npz"))
    assert json.loads(man.read_text())["version"] == 2
    generate(_synth(d, n=2), tmp_path / "s")
    assert len(list(ShardDataset(tmp_path / "s", shuffle_buffer=0))) == 2


def test_another_format_into_a_bank_is_refused(banks, media_dir: Path) -> None:
    with pytest.raises(ConfigError, match="the bank was built with options"):
        build_bank([media_dir / FACE], banks[0], BankOptions(texture_size=64, entry_format="glb"))
    with pytest.raises(ConfigError, match="entry_format must be 'compact' or 'glb'"):
        BankOptions(entry_format="zip")  # type: ignore[arg-type]


def test_export_glb_of_a_compact_entry(banks, tmp_path: Path, capsys) -> None:
    from facexpr.avatars.avatar import avatar_from_gltf
    from facexpr.cli.main import main

    out = tmp_path / "person.glb"
    code = main(["synth", "identities", str(banks[0]), "--export-glb", KEY, "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    got = avatar_from_gltf(out)
    want = BankAvatars(load_bank(banks[0])).avatar(0)
    np.testing.assert_allclose(got.base, want.base, atol=1e-4)
    assert (got.texture == want.texture).all()
    assert got.rig.n_channels == 53
    code = main(["synth", "identities", str(banks[0]), "--export-glb", "nobody", "-o", str(out)])
    assert code == 2
    assert "bank.json: no entry named 'nobody' (entries: single_face)" in capsys.readouterr().err
    code = main(["synth", "identities", str(banks[0]), "--export-glb", KEY, "-o", "x.obj"])
    assert code == 2
    assert "-o must end in .glb" in capsys.readouterr().err


def test_missing_npz_or_png_is_named(banks, tmp_path: Path) -> None:
    d = _copy(banks[0], tmp_path)
    (d / f"{KEY}.png").unlink()
    with pytest.raises(InputError, match=rf"{KEY}.png: listed in .*bank.json but missing"):
        generate(_synth(d), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    shutil.copy(banks[0] / f"{KEY}.png", d)
    (d / f"{KEY}.npz").unlink()
    with pytest.raises(InputError, match=rf"{KEY}.npz: listed in .*bank.json but missing"):
        load_bank(d)
    b = load_bank(d, check_files=False)
    with pytest.raises(InputError, match=rf"{KEY}.npz: listed in the identity bank but missing"):
        BankAvatars(b).avatar(0)


def test_corrupt_npz_is_named(banks, tmp_path: Path) -> None:
    d = _copy(banks[0], tmp_path)
    npz = d / f"{KEY}.npz"
    npz.write_bytes(b"not an npz")
    with pytest.raises(InputError, match=rf"{KEY}.npz: not an .npz file"):
        load_bank(d)
    npz.write_bytes(b"PK\x03\x04 a damaged zip")
    with pytest.raises(InputError, match=rf"{KEY}.npz: not a readable .npz bank entry"):
        BankAvatars(load_bank(d)).avatar(0)
    np.savez(npz, identity=np.zeros(5, np.float32))  # an npz, but no "format"
    with pytest.raises(InputError, match=rf"{KEY}.npz: not a compact bank entry"):
        BankAvatars(load_bank(d)).avatar(0)


def test_wrong_coefficient_count_is_named(banks, tmp_path: Path) -> None:
    d = _copy(banks[0], tmp_path)
    npz = d / f"{KEY}.npz"
    b = load_bank(d)
    n = BankAvatars(b).rig.n_identity
    with np.load(banks[0] / f"{KEY}.npz") as z:
        good = {k: z[k] for k in z.files}
    np.savez(npz, **{**good, "identity": np.zeros(n - 3, np.float32)})
    with pytest.raises(
        InputError, match=rf"{KEY}.npz: {n - 3} identity coefficients .* has {n} identity modes"
    ):
        BankAvatars(b).avatar(0)
    np.savez(npz, **{**good, "identity": np.full(n, np.nan, np.float32)})
    with pytest.raises(InputError, match=rf"{KEY}.npz: its identity coefficients are not finite"):
        BankAvatars(b).avatar(0)
    np.savez(npz, **{**good, "version": np.array(7)})
    with pytest.raises(InputError, match=rf"{KEY}.npz: bank entry version 7; this facexpr reads 1"):
        BankAvatars(b).avatar(0)


def test_corrupt_png_is_named(banks, tmp_path: Path) -> None:
    from PIL import Image

    d = _copy(banks[0], tmp_path)
    png = d / f"{KEY}.png"
    png.write_bytes(b"GIF89a not a png")
    with pytest.raises(InputError, match=rf"{KEY}.png: not a PNG image"):
        load_bank(d)
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError, match=rf"{KEY}.png: not a decodable PNG texture"):
        BankAvatars(load_bank(d)).avatar(0)
    Image.new("RGB", (64, 64)).save(png)
    with pytest.raises(
        InputError, match=rf"{KEY}.png: the texture is 64x64; a capture's is S x 2S"
    ):
        BankAvatars(load_bank(d)).avatar(0)


def test_a_compact_bank_is_an_identity_folder_of_norface_pairs(banks) -> None:
    from facexpr.synth.pairs import PairOptions, PairScene, list_identity_files, render_pair

    compact, glb = banks
    assert list_identity_files(compact) == (compact / f"{KEY}.npz",)
    want = BankAvatars(load_bank(glb)).avatar(0)  # the engine's avatar of the .glb entry
    with PairScene(PairOptions(n=1, size=48, render_size=96, identities=str(compact),
                               antialias=0)) as sc:  # fmt: skip
        av = sc.identity(0)[0]
        p = render_pair(sc, 0)
    np.testing.assert_allclose(av.identity, want.identity, atol=1e-5)
    assert (av.texture == want.texture).all()
    assert p.subject_id == KEY
    # Textured: the face's colours come from the photo, not one flat skin albedo.
    face = p.input[16:32, 16:32].reshape(-1, 3).astype(float)
    assert face.std(axis=0).mean() > 3
