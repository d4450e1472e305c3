"""Work that needs no learned model never imports torch (~250 MB and ~1 s; issue 16).

Each check runs in a fresh Python process: in pytest's own, some other test has imported torch.
A top-level ``import torch`` added to any module on these paths fails them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import facexpr

SRC = Path(facexpr.__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_importing_the_light_modules_leaves_torch_out():
    proc = _run(
        """
        import sys

        import facexpr
        import facexpr.analyze
        import facexpr.animate
        import facexpr.avatars.fitting
        import facexpr.avatars.render
        import facexpr.avatars.rig
        import facexpr.cli.info
        import facexpr.cli.main
        import facexpr.faces
        import facexpr.io

        facexpr.Analyzer  # the lazy attribute
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("blendshapes", ["none", "fit"])
def test_analyzing_an_image_leaves_torch_out(media_dir, blendshapes):
    proc = _run(
        f"""
        import sys

        from facexpr.analyze import Analyzer, AnalyzerOptions

        # The embedding and the heads are learned models (on by default once weights ship).
        opts = AnalyzerOptions(blendshapes={blendshapes!r}, embedding=None, heads=None)
        with Analyzer(opts) as a:
            table = a.analyze({str(media_dir / "single_face.jpg")!r})
        print(len(table), int(table.data["success"].sum()), "torch" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1", "1", "False"]


def test_the_analyze_command_leaves_torch_out(media_dir, tmp_path):
    argv = ["-q", "analyze", str(media_dir / "single_face.mp4"), "-o", str(tmp_path)]
    # The learned embedding and heads (on once weights are shipped) need torch.
    argv += ["--no-embedding", "--no-heads"]
    proc = _run(
        f"""
        import sys

        from facexpr.cli.main import main

        rc = main({argv!r})
        print(rc, "torch" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["0", "False"]
    assert (tmp_path / "single_face.csv").stat().st_size > 1000


def test_auto_device_is_resolved_only_by_torch_stages():
    from facexpr.analyze import AnalyzerOptions
    from facexpr.core.errors import ConfigError

    assert AnalyzerOptions().device == "auto"
    assert AnalyzerOptions(device="cpu").device == "cpu"
    with pytest.raises(ConfigError, match="device must be 'cpu', 'cuda' or 'auto', not 'gpu'"):
        AnalyzerOptions(device="gpu")
