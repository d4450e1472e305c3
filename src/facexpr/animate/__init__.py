"""facexpr.animate: drive avatars from videos, analysis tables or a webcam.

``Animator(["ict", "me.glb"]).retarget("talk.mp4")`` returns every avatar's rig weights per frame
(:class:`Animation`), by the learned multi-avatar animator or the geometric fit retarget
(:class:`AnimateOptions`); :mod:`facexpr.animate.live` streams them over UDP.
"""

from facexpr.animate.animator import AnimateOptions, Animation, Animator, AvatarTrack, LiveFrame

__all__ = ["AnimateOptions", "Animation", "Animator", "AvatarTrack", "LiveFrame"]
