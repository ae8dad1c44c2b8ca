"""Issue 6: every kernel once under a build with Cython bounds checks on.

Builds a wheel with ``-Dcython-debug=true`` (boundscheck, wraparound and
initializedcheck on), installs it into a throw-away venv that sees this
environment's numpy/scipy/sklearn, and runs ``_debug_kernels.py`` there: an
out-of-bounds index then raises IndexError instead of reading garbage.
Slow (a full compile): run with ``pytest -m slow``.
"""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("_debug_kernels.py")


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    return res


def _see_our_site_packages(py):
    """Let the venv of ``py`` import this environment's numpy, scipy, sklearn.

    Not by ``--system-site-packages``: when this environment is itself a venv,
    that flag would show the base interpreter's packages instead.  The lines of
    a .pth file are plain path entries, so the editable-install hook of this
    checkout (itself a .pth in our site-packages) does not run there.
    """
    res = _run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    )
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(res.stdout.strip(), "_outer_site_packages.pth").write_text(
        "\n".join(ours) + "\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "meson.build").exists(), reason="needs the sources")
def test_kernels_under_bounds_checks(tmp_path):
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "-Csetup-args=-Dcython-debug=true",
            f"-Cbuild-dir={tmp_path / 'build'}",
            "-w",
            str(wheels),
            str(ROOT),
        ]
    )
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _see_our_site_packages(py)
    (wheel,) = wheels.glob("mtlm-*.whl")
    _run(
        [str(py), "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)]
    )
    # Run from tmp_path with a clean path: the installed debug kernels, not the
    # editable install of this checkout.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    shutil.copy(SCRIPT, tmp_path / SCRIPT.name)
    res = _run([str(py), "-I", str(tmp_path / SCRIPT.name)], cwd=tmp_path, env=env)
    assert "debug build: boundscheck on" in res.stdout
    assert "all kernels ran" in res.stdout, res.stdout
