"""`facexpr animate VIDEO`: a real talking fixture video -> Live Link CSVs, JSON, glTF and previews
per avatar; the learned method's plumbing with tiny random weights; the UDP live stream; bad
inputs exit 2 naming the file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from facexpr.animate.animator import AnimateOptions, Animator, _Smoother, mouth_opening
from facexpr.avatars.export import LIVE_LINK_SHAPES, read_live_link_csv
from facexpr.avatars.gltf import save_gltf
from facexpr.avatars.rig import Rig
from facexpr.cli.main import main
from facexpr.core.arkit import ARKIT_NAMES
from facexpr.io._files import write_bytes_atomic, write_text_atomic
from facexpr.io.video import VideoReader
from facexpr.nn import create_model, weights_to_bytes
from facexpr.nn.registry import WeightsCard, sha256_file
from facexpr.nn.vit import FACE_MEAN, FACE_STD

SRC = Path(__file__).resolve().parents[2] / "src"
JAW = ARKIT_NAMES.index("jawOpen")
CUSTOM = ("jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R", "wiggle")


@pytest.fixture(scope="module")
def talking(shared_dir: Path) -> Path:
    path = shared_dir / "fixtures" / "media" / "single_face.mp4"
    if not path.is_file():
        pytest.skip(f"fixture video not found at {path}")
    return path


@pytest.fixture(scope="module")
def custom_glb(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    v = rng.normal(size=(12, 3))
    faces = np.array([[i, i + 1, i + 2] for i in range(10)])
    rig = Rig(neutral=v, faces=faces, channel_names=CUSTOM,
              deltas=rng.normal(size=(6, 12, 3)) * 0.1, name="anna")  # fmt: skip
    return save_gltf(rig, tmp_path_factory.mktemp("glb") / "anna.glb")


@pytest.fixture(scope="module")
def fit_out(talking: Path, custom_glb: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("animate_fit")
    rc = main(["-q", "animate", str(talking), "--method", "fit", "--no-head-pose",
               "--avatar", "ict", "--avatar", str(custom_glb), "-o", str(out)])  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def landmark_mouth(talking: Path) -> np.ndarray:
    """The inner-lip gap of every frame, from the front-end's landmarks (independently of
    facexpr.animate)."""
    from facexpr.analyze import Analyzer, AnalyzerOptions

    opts = AnalyzerOptions(blendshapes="none", embedding=None, heads=None, device="cpu")
    with Analyzer(opts) as an:
        return np.array([mouth_opening(r.faces[0].landmarks) for r in an.analyze_video(talking)])


def test_live_link_csvs_parse_and_jaw_follows_the_mouth(fit_out, landmark_mouth) -> None:
    ict = read_live_link_csv(fit_out / "ict" / "livelink.csv")
    assert ict.shape == (72, 52)
    assert ict.min() >= 0.0
    assert ict.max() <= 1.0
    r = np.corrcoef(ict[:, JAW], landmark_mouth)[0, 1]
    assert r > 0.8, r
    assert ict[:, JAW].max() - ict[:, JAW].min() > 0.1  # the jaw moves, not just correlates
    anna = read_live_link_csv(fit_out / "anna" / "livelink.csv")
    np.testing.assert_allclose(anna[:, JAW], ict[:, JAW], atol=1e-5)  # same actor, by name
    data = json.loads((fit_out / "anna" / "animation.json").read_text())
    assert data["fps"] == pytest.approx(30.0)
    assert len(data["frames"]) == 72
    assert (fit_out / "ict" / "animation.glb").stat().st_size > 1000


def test_preview_mouth_changes_when_the_actor_speaks(fit_out) -> None:
    jaw = read_live_link_csv(fit_out / "ict" / "livelink.csv")[:, JAW]
    frames = [f.image for f in VideoReader(fit_out / "ict" / "preview.mp4")]
    assert len(frames) == 72
    assert frames[0].shape[0] == 256
    assert frames[0].shape[1] > 256  # the actor on the left, the avatar on the right
    hi, lo = int(np.argmax(jaw)), int(np.argmin(jaw))
    diff = np.abs(frames[hi][:, -256:].astype(float) - frames[lo][:, -256:].astype(float))
    mouth = diff[128:192, 96:160].mean()
    forehead = diff[16:64, 96:160].mean()
    assert mouth > 5.0, mouth
    assert mouth > 3 * forehead, (mouth, forehead)


def test_one_euro_smoothing_cuts_jitter_and_follows_steps() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(90) / 30.0
    clean = np.where(t < 1.5, 0.1, 0.8)[:, None].repeat(3, 1)
    noisy = np.clip(clean + rng.normal(0, 0.03, clean.shape), 0, 1).astype(np.float32)
    sm = _Smoother(AnimateOptions(method="fit", smooth=True))
    out = np.stack([sm("a", noisy[i], float(t[i])) for i in range(len(t))])
    jitter = lambda x: np.abs(np.diff(x[:40], 2, axis=0)).mean()  # noqa: E731
    assert jitter(out) < 0.5 * jitter(noisy)
    assert abs(out[60:].mean() - 0.8) < 0.03  # 0.5 s after the step it has arrived


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> tuple[Path, Path]:
    """A random 32 px encoder and a random animator for ict and ict_toon, with their cards."""
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    cfg = {"encoder": "fxvit_tiny_d6_p16_112", "dim": 16, "hidden_dim": 32, "img_size": 32,
           "depth": 1}  # fmt: skip
    enc = folder / "expression.safetensors"
    write_bytes_atomic(enc, weights_to_bytes(create_model("expression", **cfg)))
    write_text_atomic(enc.with_suffix(".json"), WeightsCard(
        tag="t", input_size=(32, 32), mean=FACE_MEAN, std=FACE_STD, config=cfg,
        sha256=sha256_file(enc)).to_json())  # fmt: skip
    net = create_model("animator", avatars=[["ict", 53], ["ict_toon", 53]], hidden=16, depth=1)
    an = folder / "animator.safetensors"
    write_bytes_atomic(an, weights_to_bytes(net))
    write_text_atomic(an.with_suffix(".json"), WeightsCard(
        tag="t", input_size=(32, 32), config={**net.config(), "encoder_sha256": sha256_file(enc)},
        sha256=sha256_file(an)).to_json())  # fmt: skip
    return an, enc


def test_animator_method_writes_every_avatar(talking, tiny_weights, tmp_path) -> None:
    an, enc = tiny_weights
    rc = main(["-q", "animate", str(talking), "--method", "animator", "--animator-weights",
               str(an), "--encoder-weights", str(enc), "--avatar", "ict", "--avatar",
               "ict_toon", "--no-preview", "--smooth", "-o", str(tmp_path)])  # fmt: skip
    assert rc == 0
    for name in ("ict", "ict_toon"):
        w = read_live_link_csv(tmp_path / name / "livelink.csv")
        assert w.shape == (72, 52)
        assert w.min() >= 0.0
        assert w.max() <= 1.0
        assert not (tmp_path / name / "preview.mp4").exists()
    anim = Animator(["ict"], AnimateOptions(method="animator", animator_weights=an,
                                            encoder_weights=enc))  # fmt: skip
    assert anim.method == "animator"
    import itertools  # any iterable of Frames streams too (a camera reader of one's own)

    live = list(itertools.islice(anim.stream(iter(VideoReader(talking))), 3))
    assert [f.index for f in live] == [0, 1, 2]
    assert all(f.present for f in live)
    assert live[0].weights["ict"].shape == (53,)
    assert live[0].arkit["ict"].shape == (52,)
    with pytest.raises(Exception, match=r"not trained for avatar 'ict_001'"):
        Animator(["ict_001"], AnimateOptions(method="animator", animator_weights=an,
                                             encoder_weights=enc))  # fmt: skip


def test_live_streams_live_link_json_over_udp(talking, tiny_weights) -> None:
    an, enc = tiny_weights
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(60)
    port = sock.getsockname()[1]
    got: list[dict] = []

    def receive() -> None:
        try:
            while len(got) < 12:
                got.append(json.loads(sock.recvfrom(65536)[0]))
        except TimeoutError:
            pass

    th = threading.Thread(target=receive)
    th.start()
    try:
        rc = main(["-q", "animate", str(talking), "--live", "--udp", f"127.0.0.1:{port}",
                   "--max-frames", "6", "--method", "animator", "--animator-weights", str(an),
                   "--encoder-weights", str(enc), "--avatar", "ict",
                   "--avatar", "ict_toon"])  # fmt: skip
        th.join(60)
    finally:
        sock.close()
    assert rc == 0
    assert len(got) == 12  # 6 frames x 2 avatars
    assert [p["avatar"] for p in got[:2]] == ["ict", "ict_toon"]
    assert [p["frame"] for p in got[::2]] == [0, 1, 2, 3, 4, 5]
    p = got[0]
    assert p["format"] == "facexpr-live"
    assert p["face"] is True
    assert list(p["blendshapes"]) == list(LIVE_LINK_SHAPES)
    assert all(0.0 <= v <= 1.0 for v in p["blendshapes"].values())
    assert set(p["head"]) == {"HeadYaw", "HeadPitch", "HeadRoll"}
    assert abs(p["head"]["HeadYaw"]) < 1.0  # radians, a frontal face


def _cli(*argv: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "facexpr.cli.main", "animate", *argv],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip


def test_bad_inputs_exit_2_naming_the_file(shared_dir, talking, tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gltf_cases", Path(__file__).resolve().parents[1] / "avatars" / "gltf_cases.py"
    )
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    no_morph = tmp_path / "statue.glb"
    no_morph.write_bytes(cases.glb_bytes(*cases.rig_doc(0)))
    no_face = shared_dir / "fixtures" / "media" / "no_face.mp4"
    table = tmp_path / "t.csv"
    table.write_text("input,frame\n")
    out = tmp_path / "out"
    for argv, needles in [
        ([str(no_face), "--method", "fit", "-o", str(out)], [f"{no_face}: ", "no face found"]),
        ([str(talking), "--avatar", str(no_morph), "-o", str(out)],
         [f"{no_morph}: ", "no morph targets"]),
        ([str(talking), "--avatar", "ict_9999", "-o", str(out)], ["unknown avatar 'ict_9999'"]),
        ([str(table), "--method", "animator", "-o", str(out)],
         [f"{table}: ", "holds no face images"]),
        ([str(table), "--avatar", "ict", "-o", str(out)], [f"{table}: ", "no blendshape columns"]),
        ([str(talking), "--method", "animator", "-o", str(out)],
         ["no animator weights are shipped yet", "--animator-weights"]),
        ([str(talking), "-o", str(out), "--animator-weights", str(tmp_path / "none.st")],
         [f"{tmp_path / 'none.st'}: ", "not found"]),
    ]:  # fmt: skip
        r = _cli(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        assert "Traceback" not in r.stderr
        for needle in needles:
            assert needle in r.stderr, (argv, r.stderr)
    assert not out.exists()  # every input was checked before anything was written
