"""facexpr.nn: networks (tensors in, tensors out). Importing it fills the model registry."""

from facexpr.nn.teachers import registry as _teachers  # noqa: F401  (registers teachers)
