"""Avatars named on a command line: a registered name, or a .glb/.gltf file with morph targets."""

from __future__ import annotations

from pathlib import Path

from facexpr.avatars.avatar import Avatar, avatar_from_gltf, get_avatar
from facexpr.core.errors import InputError

__all__ = ["avatar_name", "is_avatar_file", "load_avatar"]


def is_avatar_file(spec: str | Path) -> bool:
    """Returns whether ``spec`` names a glTF file (by its suffix) rather than an avatar name."""
    return Path(spec).suffix.lower() in (".glb", ".gltf")


def avatar_name(spec: str | Path) -> str:
    """Returns the name an avatar spec goes by: a registered name as is, a glTF file by its stem
    (``people/anna.glb`` -> ``anna``)."""
    return Path(spec).stem if is_avatar_file(spec) else str(spec)


def load_avatar(spec: str | Path) -> Avatar:
    """Returns the avatar of a registered name or a .glb/.gltf file.

    Raises:
        ConfigError: unknown avatar name (with close matches).
        InputError: the file cannot be read as a rig, or it has no morph target (named).
    """
    if is_avatar_file(spec):
        avatar = avatar_from_gltf(spec)
        if avatar.rig.n_channels == 0:
            raise InputError(spec, "the glTF has no morph targets to animate")
        return avatar
    return get_avatar(str(spec))
