"""The tooling gates of CI: lint, format, types, and no drift between models and migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ostiary.migrate import check, upgrade

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_tool(*command: str) -> None:
    """Run one of this interpreter's tools in the project root; fail with its output."""
    tool = BIN / command[0]
    if not tool.exists():
        pytest.fail(f"{tool} is missing: install the test extras", pytrace=False)
    done = subprocess.run(
        [str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` exited with {done.returncode}\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )


def test_ruff_finds_no_lint_errors() -> None:
    run_tool("ruff", "check", "src", "tests")


def test_ruff_format_leaves_every_file_as_is() -> None:
    run_tool("ruff", "format", "--check", "src", "tests")


def test_mypy_strict_finds_no_type_errors() -> None:
    run_tool("mypy")


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    upgrade(url)
    check(url)


def test_migrations_match_the_models_on_postgresql(postgres_template: str) -> None:
    upgrade(postgres_template)
    check(postgres_template)


def test_readme_configuration_table_lists_every_setting() -> None:
    """README's promise: a configuration table of every ``OSTIARY_*`` setting."""
    from ostiary.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [
        f"OSTIARY_{name.upper()}"
        for name in Settings.model_fields
        if f"`OSTIARY_{name.upper()}`" not in table
    ]
    assert not missing, f"README's configuration table lacks {missing}"
