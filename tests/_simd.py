"""Run the kernels of a module with run-time SIMD dispatch at one level."""

import contextlib


@contextlib.contextmanager
def simd(module, level):
    """Switch ``module`` (``_ldml``, ``_vote``) to ``level`` inside the block."""
    old = module._set_simd_level(level)
    try:
        yield
    finally:
        module._set_simd_level(old)
