"""The distributions under packages/ move in lock-step: one version for all, and every dependency
of one on another pinned to exactly that version (see CONTRIBUTING.md, "Versions")."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGES = Path(__file__).resolve().parents[1] / "packages"


def projects() -> dict[str, dict[str, Any]]:
    """Every distribution's [project] table, by name: each folder of packages/ with a
    pyproject.toml (a new distribution is checked as soon as it exists)."""
    found: dict[str, dict[str, Any]] = {}
    for pyproject in sorted(PACKAGES.glob("*/pyproject.toml")):
        project: dict[str, Any] = tomllib.loads(pyproject.read_text())["project"]
        found[canonicalize_name(project["name"])] = project
    return found


def requirements(project: dict[str, Any]) -> list[Requirement]:
    listed = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        listed += extra
    return [Requirement(line) for line in listed]


def test_every_folder_of_packages_is_a_distribution() -> None:
    folders = sorted(p.name for p in PACKAGES.iterdir() if p.is_dir())
    assert len(projects()) == len(folders) >= 4, folders


def test_one_version_for_all_distributions() -> None:
    versions = {name: project["version"] for name, project in projects().items()}
    assert len(set(versions.values())) == 1, f"the distributions' versions drifted: {versions}"


def test_dependencies_between_distributions_are_pinned_to_that_version() -> None:
    found = projects()
    version = next(iter(found.values()))["version"]
    for name, project in found.items():
        for requirement in requirements(project):
            if canonicalize_name(requirement.name) not in found:
                continue
            assert str(requirement.specifier) == f"=={version}", (
                f"{name} depends on {requirement}: a dependency on another chat-shell "
                f"distribution is pinned to the shared version, =={version}"
            )
