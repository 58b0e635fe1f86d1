"""What a user's install gets: the wheel holds `rootfi_sync` alone (no generic top-level
`flows`, `tasks` or `deployments`), and a worker's install pulls neither the sandbox nor
faker: they come with the `sandbox` extra."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    uv = ROOT / ".uv" / "bin" / "uv"
    found = str(uv) if uv.is_file() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (make env installs it in .uv/)")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    command = [_uv(), "build", "--wheel", "--package", "rootfi-sync", "--out-dir", str(out)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)
    [built] = out.glob("rootfi_sync-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}

    assert tops == {"rootfi_sync", next(t for t in tops if t.endswith(".dist-info"))}
    assert any(n.startswith("rootfi_sync/ledger/migrations/") for n in wheel.namelist())


def test_the_sandbox_and_faker_come_only_with_the_sandbox_extra(wheel: zipfile.ZipFile) -> None:
    [metadata] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr(wheel.read(metadata).decode()).get_all("Requires-Dist") or []
    always = [r for r in requires if "extra ==" not in r]
    names = {re.split(r"[;\[<>=! ]", r)[0] for r in always}

    assert "prefect" in names and "sqlalchemy" in names
    assert not names & {"rootfi-sandbox", "faker", "starlette", "uvicorn"}, always
    assert "rootfi-sandbox; extra == 'sandbox'" in requires


def test_a_workers_install_has_neither_the_sandbox_nor_faker(tmp_path: Path) -> None:
    """What the Dockerfile installs (`uv sync --locked --no-dev`), in a folder of its own."""
    for name in ("pyproject.toml", "uv.lock", "README.md", "prefect.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "sandbox").mkdir()
    for name in ("pyproject.toml", "README.md"):  # the lock names the member; not installed
        shutil.copy(ROOT / "sandbox" / name, tmp_path / "sandbox" / name)
    for folder in ("rootfi_sync", "tasks", "flows", "deployments"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    command = [_uv(), "sync", "--locked", "--no-dev", "--quiet"]
    subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)

    [site] = venv.glob("lib/python*/site-packages")
    installed = {p.name.split("-")[0].lower() for p in site.iterdir()}
    assert "prefect" in installed and "rootfi_sync" in installed
    assert not installed & {"faker", "rootfi_sandbox"}, sorted(installed)
    result = subprocess.run(
        [str(venv / "bin" / "rootfi-sync"), "sandbox"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "pip install 'rootfi-sync[sandbox]'" in " ".join(result.stderr.split())
