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


#: Where each folder of the checkout goes in the installed package.
MAPPED = {"runengine": "runengine", "plans": "runengine/plans", "devices": "runengine/devices",
          "callbacks": "runengine/callbacks", "cli": "runengine/cli"}  # fmt: skip


def test_wheel_contains_every_module_of_the_checkout(wheel):
    """A new package folder missing from setup.cfg's list would install without its modules."""
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [
        f"{MAPPED[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in MAPPED
        for path in sorted((ROOT / folder).rglob("*.py"))
        if f"{MAPPED[folder]}/{path.relative_to(ROOT / folder).as_posix()}" not in names
    ]
    assert not missing, f"not in the wheel (add the package to setup.cfg): {missing}"
    assert "runengine/devices/ioc/motors.py" in names
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
