"""Triplet sources: the mining rules (identity varied inside each triplet), held-out splits,
the mix and the batch, on datasets written at test time (and a generated FEC fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facexpr.core.errors import ConfigError
from facexpr.io.datasets.fec import FecDataset
from facexpr.io.shards import LabelField, Sample, ShardWriter
from facexpr.train.mixing import ShardIndex
from facexpr.train.triplets import (
    DEFAULT_MARGINS,
    FecTriplets,
    RigTriplets,
    TeacherTriplets,
    TrackTriplets,
    TripletMix,
    TripletType,
    VoteTriplets,
    collate_triplets,
    mine_triplets,
)


def _write(out: Path, field: str, dim: int, rows: list[tuple[str, np.ndarray]]) -> Path:
    schema = [LabelField(field, (dim,), "float32", "test vector")]
    if field == "arkit_teacher":
        schema.append(LabelField("teacher_presence", (), "float32", "presence"))
    rng = np.random.default_rng(0)
    with ShardWriter(out, samples_per_shard=16, schema=schema) as w:
        for i, (subject, vec) in enumerate(rows):
            labels: dict[str, object] = {field: vec}
            if field == "arkit_teacher":
                labels["teacher_presence"] = np.float32(0.2 if i == 0 else 0.99)
            img = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            w.write(Sample(f"k{i:04d}", img, labels, "test", subject))
    return out


@pytest.fixture(scope="module")
def rig_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 8 identities each rendering the same 12 expressions: exact positives exist across people.
    rng = np.random.default_rng(1)
    exprs = rng.random((12, 52)).astype(np.float32)
    rows = [(f"ict-{s:05d}", exprs[e]) for s in range(8) for e in range(12)]
    return _write(tmp_path_factory.mktemp("rig"), "arkit_weights", 52, rows)


def _vec(ix: ShardIndex, field: str, ref: tuple[int, int]) -> np.ndarray:
    return ix.vectors(field)[0][ref[1]]


def test_rig_triplets_vary_identity_and_keep_the_margin(rig_dir: Path) -> None:
    ix = ShardIndex(rig_dir)
    src = RigTriplets(ix, n=200, pos_max=0.0, margin=0.5, size=20, seed=3)
    assert len(src) == 200
    v = ix.vectors("arkit_weights")[0]
    own = 0
    for a, p, n in src.triples:
        (_, ia), (_, ip), (_, ineg) = src.refs[a], src.refs[p], src.refs[n]
        assert ix.subject_ids[ip] != ix.subject_ids[ia]  # positive: another identity
        own += ix.subject_ids[ineg] == ix.subject_ids[ia]  # negative: often the anchor's identity
        d_ap = np.linalg.norm(v[ia] - v[ip])
        assert d_ap == 0.0
        assert np.linalg.norm(v[ia] - v[ineg]) >= d_ap + 0.5
        assert np.linalg.norm(v[ip] - v[ineg]) >= d_ap + 0.5
    # Half the anchors look for the negative in their own identity first (mine_triplets'
    # own_negative); always doing so collapsed training.
    assert 0.3 < own / len(src.triples) < 0.7
    t = src[0]
    assert t.anchor.shape == (20, 20, 3)
    assert t.type_id is TripletType.RIG
    assert t.subjects[0] == t.subjects[2] != t.subjects[1]
    again = RigTriplets(ix, n=200, pos_max=0.0, margin=0.5, size=20, seed=3)
    np.testing.assert_array_equal(again.triples, src.triples)


def test_held_out_identities(rig_dir: Path) -> None:
    train = RigTriplets(rig_dir, n=100, split="train", test_share=0.25, pos_max=0.0, margin=0.5)
    test = RigTriplets(rig_dir, n=100, split="test", test_share=0.25, pos_max=0.0, margin=0.5)
    assert train.subjects().isdisjoint(test.subjects())
    assert len(test.subjects()) == 2  # 2 of the 8 identities held out
    assert len(train.subjects()) == 6


def test_teacher_triplets_skip_low_presence(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = [(f"p{i % 30}", rng.random(51).astype(np.float32) * 0.3) for i in range(90)]
    src = TeacherTriplets(_write(tmp_path / "t", "arkit_teacher", 51, rows), n=50,
                          pos_max=10.0, margin=0.0, size=None)  # fmt: skip
    assert len(src) == 50
    used = {int(src.refs[j][1]) for j in np.unique(src.triples)}
    assert 0 not in used  # sample 0 has presence 0.2 < 0.5
    for a, p, _ in src.triples:
        assert src.subject_keys[a] != src.subject_keys[p]
    assert src[0].anchor.shape == (12, 12, 3)


def test_track_triplets_stay_in_one_track(tmp_path: Path) -> None:
    # Two tracks whose expression moves along a line over the frames.
    rows = [(f"clip#{t}", np.full(4, f / 10, np.float32)) for t in range(2) for f in range(20)]
    src = TrackTriplets(_write(tmp_path / "v", "arkit", 4, rows), n=60, field="arkit",
                        pos_max=0.25, margin=0.5)  # fmt: skip
    assert len(src) == 60
    for a, p, n in src.triples:
        assert len({src.subject_keys[a], src.subject_keys[p], src.subject_keys[n]}) == 1
    assert src[0].type_id is TripletType.TRACK


def test_vote_triplets_use_l1_between_distributions(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    dists = rng.dirichlet(np.full(8, 0.3), size=120).astype(np.float32)
    src = VoteTriplets(_write(tmp_path / "f", "emotion_soft", 8, [("", d) for d in dists]),
                       n=80, pos_max=0.5, margin=0.6)  # fmt: skip
    assert len(src) >= 40
    for a, p, n in src.triples:
        va, vp, vn = (dists[src.refs[k][1]] for k in (a, p, n))
        d_ap = np.abs(va - vp).sum()
        assert d_ap <= 0.5 + 1e-6
        assert np.abs(va - vn).sum() >= d_ap + 0.6 - 1e-5
        assert np.abs(vp - vn).sum() >= d_ap + 0.6 - 1e-5


def _fec(tmp_path: Path, first_votes: str = "1,1,1") -> FecDataset:
    img = tmp_path / "img"
    img.mkdir(parents=True)
    rows = []
    kinds = [("ONE_CLASS_TRIPLET", first_votes), ("THREE_CLASS_TRIPLET", "3,3,2")]
    for r, (ttype, votes) in enumerate(kinds):
        cells = []
        for k in range(3):
            name = f"{r}{k}.png"
            Image.fromarray(np.full((40, 40, 3), 80 * k, np.uint8)).save(img / name)
            cells += [f'"http://x.org/{name}"', "0.0,1.0,0.0,1.0"]
        a, b, c = votes.split(",")
        rows.append(",".join([*cells, ttype, "1", a, "2", b, "3", c]))
    (tmp_path / "fec.csv").write_text("\n".join(rows) + "\n")
    return FecDataset(tmp_path / "fec.csv", img, size=16)


def test_fec_triplets_put_the_odd_one_last(tmp_path: Path) -> None:
    src = FecTriplets(_fec(tmp_path))
    t0, t1 = src[0], src[1]
    assert t0.type_id is TripletType.FEC_ONE_CLASS
    assert t0.keys[2].endswith("/00.png")  # all annotators chose face 1 as the odd one
    assert int(t0.negative.mean()) == 0
    assert t1.type_id is TripletType.FEC_THREE_CLASS
    assert t1.keys[2].endswith("/12.png")
    assert DEFAULT_MARGINS[t1.type_id] == 0.2
    assert len(FecTriplets(src.dataset, min_agreement=0.9)) == 1
    with pytest.raises(ConfigError, match=r"no triplet with agreement >= 1\.0"):
        FecTriplets(_fec(tmp_path / "split_votes", first_votes="1,1,2"), 1.0)


def test_mix_and_collate(rig_dir: Path, tmp_path: Path) -> None:
    rig = RigTriplets(rig_dir, n=40, pos_max=0.0, margin=0.5, size=16)
    fec = FecTriplets(_fec(tmp_path))
    mix = TripletMix({"rig": rig, "fec": fec}, {"rig": 0.75, "fec": 0.25}, n=200, seed=1)
    c = mix.counts()
    assert 120 < c["rig"] < 180
    assert c["rig"] + c["fec"] == 200
    batch = collate_triplets([mix[i] for i in range(8)])
    assert batch["anchor"].shape == (8, 3, 16, 16)
    assert batch["negative"].dtype.is_floating_point is False
    ids = batch["type_id"].tolist()
    assert set(ids) <= {int(TripletType.RIG), int(TripletType.FEC_ONE_CLASS),
                        int(TripletType.FEC_THREE_CLASS)}  # fmt: skip
    big = RigTriplets(rig_dir, n=4, pos_max=0.0, margin=0.5, size=24)
    with pytest.raises(ConfigError, match="images of several sizes"):
        collate_triplets([rig[0], big[0]])
    with pytest.raises(ConfigError, match="ratios name"):
        TripletMix({"rig": rig}, {"fec": 1.0})
    with pytest.raises(ConfigError, match="ratios must be > 0"):
        TripletMix({"rig": rig}, {"rig": -1.0})
    with pytest.raises(IndexError, match="out of range"):
        TripletMix({"rig": rig}, {"rig": 1.0}, n=5)[5]


def test_source_errors(rig_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n must be >= 1"):
        RigTriplets(rig_dir, n=0)
    with pytest.raises(ConfigError, match="split must be 'all', 'train' or 'test'"):
        RigTriplets(rig_dir, split="val")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no numeric label 'arkit_teacher'"):
        TeacherTriplets(rig_dir)
    with pytest.raises(ConfigError, match="no triplet satisfies pos_max=-1"):
        RigTriplets(rig_dir, n=5, pos_max=-1.0)
    tiny = _write(tmp_path / "tiny", "arkit_weights", 52, [("a", np.zeros(52, np.float32))] * 2)
    with pytest.raises(ConfigError, match="2 samples carry 'arkit_weights'; need at least 3"):
        RigTriplets(tiny)
    with pytest.raises(ConfigError, match="metric must be 'l2' or 'l1'"):
        mine_triplets(np.zeros((5, 2)), ["a"] * 5, 3, pos_max=1, margin=0, metric="cos")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_agreement must be in"):
        FecTriplets(None, min_agreement=2.0)
