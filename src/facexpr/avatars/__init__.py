"""facexpr.avatars: blendshape rigs (ICT FaceKit, glTF), named avatars and a headless renderer.

Importing this package loads no model and no OpenGL: the ICT asset is read on first use, and
moderngl only when a :class:`~facexpr.avatars.render.Renderer` is made.
"""

from facexpr.avatars.avatar import (
    Avatar,
    Look,
    avatar_from_gltf,
    get_avatar,
    list_avatars,
    register_avatar,
    register_gltf_avatar,
)
from facexpr.avatars.gltf import load_gltf, save_gltf
from facexpr.avatars.ict import load_ict
from facexpr.avatars.rig import Rig

__all__ = [
    "Avatar",
    "Look",
    "Rig",
    "avatar_from_gltf",
    "get_avatar",
    "list_avatars",
    "load_gltf",
    "load_ict",
    "register_avatar",
    "register_gltf_avatar",
    "save_gltf",
]
