"""Each plugin core package's docstring maps its modules: a newcomer reads it first, so a
module it leaves out is a module nobody finds."""

from __future__ import annotations

import importlib
import pkgutil

import pytest


@pytest.mark.parametrize(
    "package", ["edge_plugins.jwt", "edge_plugins.ratelimit", "edge_plugins.trace"]
)
def test_the_package_docstring_names_every_module(package: str) -> None:
    module = importlib.import_module(package)
    doc = module.__doc__ or ""
    modules = {info.name for info in pkgutil.iter_modules(module.__path__)}
    unnamed = sorted(name for name in modules if f":mod:`.{name}`" not in doc)
    assert unnamed == [], f"{package}'s docstring does not name {unnamed}"
