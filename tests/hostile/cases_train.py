"""Hostile training configs and checkpoints for ``facexpr train``: THE LEAD FILLS THIS IN.

``facexpr train`` (YAML configs mapped to dataclasses, safetensors checkpoints) is being built on
another branch; its command line is not known here, so no case is invented. When it lands, add
cases here in the same shape as the other ``cases_*.py`` modules, for example:

- configs: empty file, not YAML, YAML that is a list, 100,000-deep nesting, an alias bomb
  ("billion laughs"), unknown keys (the error names the key and a close match), wrong types
  (``optim.lr: "fast"``), NaN/inf/negative learning rates, a dataset path with ``../`` or an
  absolute path into the canary folder, ``!!python/object`` tags (must never construct objects);
- checkpoints (``.safetensors``): zero bytes, a header length larger than the file, a header that
  is not JSON, dtype/shape that disagree with the byte ranges, overlapping or out-of-file
  ``data_offsets``, a tensor claiming 10^12 elements, a pickle file renamed ``.safetensors``
  (must never be unpickled), a checkpoint of another model (missing/unexpected keys named).

Each case's ``build`` writes the file into ``dirs.inp`` and returns a :class:`corpus.Setup` with
the ``facexpr train ...`` arguments; :func:`corpus.check` does the rest (exit 2, no traceback, the
file named, no canary read, no write outside ``out/``, bounded memory).
"""

from __future__ import annotations

from corpus import Case

CASES: list[Case] = []
