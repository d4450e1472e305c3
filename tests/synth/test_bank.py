"""Identity banks (captured real people) and photoreal synthetic faces rendered from them."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facexpr.core.errors import ConfigError, InputError
from facexpr.io.shards import ShardDataset, read_manifest
from facexpr.synth import SynthOptions, generate
from facexpr.synth.bank import (
    BankOptions,
    build_bank,
    list_bank_sources,
    load_bank,
    person_split,
)
from facexpr.synth.engine import SCHEMA

pytest.importorskip("moderngl", reason="rendering needs moderngl")

FACES = ("single_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg")
NO_FACE = "free-mountain-vector-01.jpg"
OPTS = BankOptions(texture_size=64)
GLB = BankOptions(texture_size=64, entry_format="glb")


def _synth(bank: Path, **kw: object) -> SynthOptions:
    base = SynthOptions(
        avatars=(), identity_bank=str(bank), n=6, size=64, render_size=96, seed=3,
        samples_per_shard=4, identity_block=2,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def bank(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("bank") / "b"
    inputs = [media_dir / f for f in (*FACES, NO_FACE)]
    return d, build_bank(inputs, d, OPTS)


@pytest.fixture(scope="module")
def glb_bank(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bank of one person in the ``.glb`` entry format."""
    d = tmp_path_factory.mktemp("glb_bank") / "b"
    build_bank([media_dir / FACES[0]], d, GLB)
    return d


def test_bank_writes_one_compact_entry_per_person_and_a_manifest(bank) -> None:
    from facexpr.synth.bank import BankAvatars

    d, report = bank
    assert sorted(report.captured) == sorted(Path(f).stem for f in FACES)
    b = load_bank(d)
    assert [e.person for e in b.entries] == [Path(f).stem for f in FACES]
    assert json.loads((d / "bank.json").read_text())["version"] == 2
    for k, e in enumerate(b.entries):
        assert e.source.endswith(e.person + ".jpg")
        assert 0.0 < e.residual < 0.1
        assert all(0.0 < c <= 1.0 for c in e.tone)
        assert (e.file, e.texture) == (f"{e.key}.npz", f"{e.key}.png")
        assert (d / e.file).stat().st_size + (d / e.texture).stat().st_size < 100_000
        av = BankAvatars(b).avatar(k)
        assert av.texture.shape == (64, 128, 3)
        assert av.rig.n_channels == 53
    assert not list(d.glob("*.glb"))
    assert b.options == OPTS


def test_a_glb_bank_writes_one_glb_per_person(glb_bank: Path) -> None:
    from facexpr.avatars.avatar import avatar_from_gltf

    b = load_bank(glb_bank)
    (e,) = b.entries
    assert (e.file, e.texture, e.compact) == (f"{Path(FACES[0]).stem}.glb", "", False)
    av = avatar_from_gltf(b.path(e))
    assert av.texture.shape == (64, 128, 3)
    assert av.rig.n_channels == 53
    assert b.options == GLB


def test_a_photo_without_a_face_is_listed_with_its_reason(bank) -> None:
    d, report = bank
    assert [f.person for f in report.failed] == [Path(NO_FACE).stem]
    data = json.loads((d / "bank.json").read_text())
    (fail,) = data["failures"]
    assert fail["source"].endswith(NO_FACE)
    assert fail["reason"] == "no face found"
    assert not list(d.glob(f"{Path(NO_FACE).stem}.*"))


def test_a_face_filling_the_photo_is_captured_with_a_border(
    shared_dir: Path, tmp_path: Path
) -> None:
    from facexpr.core.types import Frame
    from facexpr.faces import FaceFrontEnd, FaceFrontEndOptions
    from facexpr.io.images import read_image

    # A UTKFace crop whose face fills the photo: the detector misses it as it is.
    tight = shared_dir / "datasets/utkface/UTKFace/10_0_0_20170110225402690.jpg.chip.jpg"
    if not tight.is_file():
        pytest.skip(f"UTKFace not found at {tight.parent}")
    with FaceFrontEnd(FaceFrontEndOptions(align_size=0, pose=False)) as fe:
        assert fe.process(Frame(read_image(tight), source="t")).faces == ()
    rep = build_bank([tight], tmp_path / "b", OPTS)
    assert rep.captured == [tight.stem]
    (entry,) = load_bank(tmp_path / "b").entries
    assert entry.notes == ("no face found in the photo as it is; captured with a border around it",)


def test_a_rerun_skips_what_is_done(bank, media_dir: Path) -> None:
    d, _ = bank
    stamps = {p.name: p.stat().st_mtime_ns for p in (*d.glob("*.npz"), *d.glob("*.png"))}
    assert len(stamps) == 2 * len(FACES)
    again = build_bank([media_dir / f for f in (*FACES, NO_FACE)], d, OPTS)
    assert again.captured == []
    assert again.failed == []
    assert sorted(again.skipped) == sorted(Path(f).stem for f in (*FACES, NO_FACE))
    assert {p.name: p.stat().st_mtime_ns for p in (*d.glob("*.npz"), *d.glob("*.png"))} == stamps


def test_a_rerun_with_other_options_is_refused(bank, media_dir: Path) -> None:
    d, _ = bank
    with pytest.raises(ConfigError, match="the bank was built with options"):
        build_bank([media_dir / FACES[0]], d, BankOptions(texture_size=128))


def test_folder_sources_subfolders_are_persons(media_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    shutil.copy(media_dir / FACES[0], tmp_path / "alice" / "a.jpg")
    shutil.copy(media_dir / FACES[1], tmp_path / "alice" / "b.jpg")
    shutil.copy(media_dir / FACES[2], tmp_path / "bob.jpg")
    sources, problems = list_bank_sources([tmp_path])
    assert problems == []
    assert sorted((s.key, s.person) for s in sources) == [
        ("alice__a", "alice"), ("alice__b", "alice"), ("bob", "bob"),
    ]  # fmt: skip
    assert len(list_bank_sources([tmp_path], limit=2)[0]) == 2


def test_utkface_sources_use_the_readers_subject(tmp_path: Path, media_dir: Path) -> None:
    a = "25_0_1_20170116174525125.jpg.chip.jpg"
    b = "30_1_2_20170116174559001.jpg.chip.jpg"  # same minute: one leakage cluster
    for name in (a, b):
        shutil.copy(media_dir / FACES[0], tmp_path / name)
    sources, _ = list_bank_sources([tmp_path])
    assert [s.person for s in sources] == ["utk-201701161745"] * 2
    assert len({s.key for s in sources}) == 2


def test_person_split_is_stable_and_monotone() -> None:
    ids = [f"p{i}" for i in range(400)]
    test = {p for p in ids if person_split(p, 0.25) == "test"}
    assert 60 < len(test) < 140
    assert test <= {p for p in ids if person_split(p, 0.5) == "test"}
    assert person_split("p1", 0.25) == person_split("p1", 0.25)
    with pytest.raises(ConfigError, match="test_fraction must be in"):
        person_split("p1", 1.5)


@pytest.fixture(scope="module")
def rendered(bank, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("photoreal") / "s"
    generate(_synth(bank[0]), d)
    return d


def test_synth_from_a_bank_has_the_schema_and_the_persons(rendered: Path, bank) -> None:
    persons = {e.person for e in load_bank(bank[0]).entries}
    samples = list(ShardDataset(rendered, shuffle_buffer=0))
    assert len(samples) == 6
    names = {f.name for f in SCHEMA}
    for s in samples:
        assert s.image.shape == (64, 64, 3)
        assert {"ict_weights", "arkit_weights", "aus", "landmarks68", "head_pose"} <= set(s.labels)
        assert set(s.labels) <= names
        assert s.labels["ict_weights"].shape == (53,)
        assert s.labels["arkit_weights"].shape == (52,)
        lm = s.labels["landmarks68"]
        assert np.all((lm > 0) & (lm < 64))
        assert s.subject_id in persons
        assert s.provenance["avatar"] == f"bank:{s.subject_id}"
    # identity blocks of 2: samples 2b and 2b+1 show the same person
    subj = [s.subject_id for s in samples]
    assert subj[0::2] == subj[1::2]


def test_the_face_is_textured_not_flat(rendered: Path) -> None:
    s = next(iter(ShardDataset(rendered, shuffle_buffer=0)))
    lm = s.labels["landmarks68"]
    x0, y0 = lm.min(axis=0).astype(int)
    x1, y1 = lm.max(axis=0).astype(int)
    face = s.image[y0:y1, x0:x1].astype(np.float32)
    # A captured face has detail (brows, lips, skin texture): far from one flat colour.
    assert face.std(axis=(0, 1)).mean() > 10.0


def test_splits_are_by_person(rendered: Path, bank, tmp_path: Path) -> None:
    m = read_manifest(rendered)
    train, test = set(m.splits["train"]), set(m.splits["test"])
    assert not train & test
    for p in train | test:
        assert person_split(p, 0.2) == ("test" if p in test else "train")
    persons = [e.person for e in load_bank(bank[0]).entries]
    frac = 0.6  # the hashes of the three fixture people: 0.95, 0.53, 0.94
    held = {p for p in persons if person_split(p, frac) == "test"}
    assert held == {"0-f1-su-ph"}
    d = tmp_path / "t"
    generate(_synth(bank[0], bank_split="test", test_fraction=frac, n=4), d)
    got = {s.subject_id for s in ShardDataset(d, shuffle_buffer=0)}
    assert got <= held


def test_same_seed_same_bytes_whatever_the_workers(rendered: Path, bank, tmp_path: Path) -> None:
    generate(_synth(bank[0], workers=2), tmp_path / "w2")

    def files(d: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if not p.name.startswith(".")}

    assert files(rendered) == files(tmp_path / "w2")


def test_same_expressions_as_the_untextured_engine(rendered: Path, tmp_path: Path) -> None:
    # two identities or more: a draw among one identity would take no random bits
    generate(
        SynthOptions(n=6, size=64, render_size=96, seed=3, samples_per_shard=4, n_identities=2),
        tmp_path / "u",
    )
    a = [s.labels["ict_weights"] for s in ShardDataset(rendered, shuffle_buffer=0)]
    b = [s.labels["ict_weights"] for s in ShardDataset(tmp_path / "u", shuffle_buffer=0)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))


def test_missing_bank(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere: identity bank not found"):
        generate(_synth(tmp_path / "nowhere"), tmp_path / "out")


def test_empty_folder_is_not_a_bank(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: not an identity bank: no bank.json"):
        generate(_synth(tmp_path / "empty"), tmp_path / "out")


def _copy(bank_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "copy"
    shutil.copytree(bank_dir, d, ignore=shutil.ignore_patterns(".facexpr.lock"))
    return d


def test_corrupt_glb_is_named(glb_bank: Path, tmp_path: Path) -> None:
    d = _copy(glb_bank, tmp_path)
    glb = d / f"{Path(FACES[0]).stem}.glb"
    glb.write_bytes(b"not a glb at all")
    with pytest.raises(InputError, match=rf"{glb.name}: not a glTF binary"):
        generate(_synth(d), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_glb_is_named(glb_bank: Path, tmp_path: Path) -> None:
    d = _copy(glb_bank, tmp_path)
    glb = d / f"{Path(FACES[0]).stem}.glb"
    glb.write_bytes(glb.read_bytes()[:5000])
    with pytest.raises(InputError, match=rf"{glb.name}: truncated or damaged .glb"):
        load_bank(d)


def test_glb_of_another_rig_is_named(glb_bank: Path, tmp_path: Path) -> None:
    from facexpr.avatars.gltf import save_gltf
    from facexpr.avatars.ict import load_ict
    from facexpr.synth.bank import BankAvatars

    d = _copy(glb_bank, tmp_path)
    glb = d / f"{Path(FACES[0]).stem}.glb"
    save_gltf(load_ict(), glb)  # a glb, but not a capture (no texture, other topology)
    b = load_bank(d)
    with pytest.raises(InputError, match=rf"{glb.name}: not a capture of the ICT FaceKit rig"):
        BankAvatars(b).avatar(0)


def test_manifest_pointing_to_a_missing_file(glb_bank: Path, tmp_path: Path) -> None:
    d = _copy(glb_bank, tmp_path)
    gone = d / f"{Path(FACES[0]).stem}.glb"
    gone.unlink()
    with pytest.raises(InputError, match=rf"{gone.name}: listed in .*bank.json but missing"):
        generate(_synth(d), tmp_path / "out")


def test_damaged_manifest(bank, tmp_path: Path) -> None:
    d = _copy(bank[0], tmp_path)
    (d / "bank.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bank.json: not valid JSON"):
        load_bank(d)
    (d / "bank.json").write_text(json.dumps({"format": "facexpr.identity_bank", "version": 1}))
    with pytest.raises(InputError, match=r"bank.json: the identity bank has no captured identity"):
        load_bank(d)


def test_no_person_in_the_split(bank, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no person of the bank is in the 'test' split"):
        generate(_synth(bank[0], bank_split="test", test_fraction=0.0), tmp_path / "out")


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="give at least one avatar name or an identity_bank"):
        SynthOptions(avatars=())
    with pytest.raises(ConfigError, match="bank_split needs an identity_bank"):
        SynthOptions(bank_split="test")
    with pytest.raises(ConfigError, match="test_fraction must be in"):
        SynthOptions(test_fraction=2.0)
    with pytest.raises(ConfigError, match="identity_block must be >= 1"):
        SynthOptions(identity_block=0)
    with pytest.raises(ConfigError, match="textured_light must be"):
        SynthOptions(textured_light="flat")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="texture_size must be >= 32"):
        BankOptions(texture_size=8)


def test_cli_identities_exits_2_listing_the_failure(
    media_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facexpr.cli.main import main

    code = main(["synth", "identities", str(media_dir / NO_FACE), "-o", str(tmp_path / "b"),
                 "--texture-size", "64"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert f"{NO_FACE}: no face found" in err
    assert json.loads((tmp_path / "b" / "bank.json").read_text())["entries"] == []


def test_cli_synth_from_a_bank(bank, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facexpr.cli.main import main

    out = tmp_path / "s"
    code = main(["synth", "--identities", str(bank[0]), "--n", "2", "--size", "64", "-o",
                 str(out), "--split", "train"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    m = read_manifest(out)
    assert m.n_samples == 2
    assert m.attributes["options"]["bank_split"] == "train"
    code = main(["synth", "--identities", str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert code == 2
    assert "missing: identity bank not found" in capsys.readouterr().err


def test_cli_identities_number_still_means_a_count(tmp_path: Path) -> None:
    from facexpr.cli.main import main

    out = tmp_path / "s"
    assert main(["synth", "--identities", "2", "--n", "2", "--size", "64", "-o", str(out)]) == 0
    assert read_manifest(out).attributes["options"]["n_identities"] == 2


def test_cli_synth_from_a_source_captures_a_bank_first(
    media_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facexpr.cli.main import main

    out = tmp_path / "s"
    code = main(["synth", "--identities", str(media_dir / FACES[0]), "--n", "2", "--size", "64",
                 "--texture-size", "32", "-o", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    b = load_bank(tmp_path / "s_bank")
    assert [e.person for e in b.entries] == [Path(FACES[0]).stem]
    assert {s.subject_id for s in ShardDataset(out, shuffle_buffer=0)} == {Path(FACES[0]).stem}
