"""The folders plans/, devices/ and callbacks/ import as runengine.* in both install modes."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("plans", "devices", "callbacks")


def test_editable_install_maps_the_folders():
    import runengine

    for name in SUBPACKAGES:
        module = __import__(f"runengine.{name}", fromlist=["_"])
        assert Path(module.__file__).resolve() == ROOT / name / "__init__.py"
    assert Path(runengine.__file__).resolve() == ROOT / "runengine" / "__init__.py"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
    )  # fmt: skip
    (path,) = out.glob("runengine-*.whl")
    return path


def test_wheel_contains_the_mapped_folders(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "runengine/__init__.py",
        "runengine/commands/registry.py",
        "runengine/plans/__init__.py",
        "runengine/devices/launcher.py",
        "runengine/devices/ioc/motors.py",
        "runengine/callbacks/__init__.py",
        "runengine/cli/demo.py",
    ):
        assert expected in names
    assert not any(name.startswith(("plans/", "devices/", "callbacks/", "cli/")) for name in names)


def test_regular_install_imports_from_where_it_was_installed(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    code = (
        "import runengine, runengine.plans, runengine.devices, runengine.callbacks;"
        "print(runengine.__file__); print(runengine.plans.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for line in out.stdout.split():
        assert line.startswith(str(target)), line
