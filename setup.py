"""Packages for setuptools (the rest of the metadata is in pyproject.toml).

The reference library lives once, in ``specs/``; the wheel ships it as the package data
``convcalc/library`` (``convcalc.network.library`` finds it there, or ``specs/`` in a checkout).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["convcalc", "convcalc.*"]), "convcalc.library"],
    package_dir={"convcalc.library": "specs"},
    package_data={"convcalc.library": ["*.yaml", "*.json", "*.md", "include/*.yaml", "examples/*.yaml", "layers/*.yaml"]},
)
