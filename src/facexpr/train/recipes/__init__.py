"""The recipes ``facexpr train`` knows: ``mae`` (stage 1) and ``expression`` (stage 2)."""
