"""facexpr: fine-grained facial expression measurement and expression-driven avatars."""

__version__ = "0.1.0"
