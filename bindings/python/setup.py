"""Builds the package: setuptools-rust builds libbilliard (a plain C-ABI
cdylib that libbilliard/_lib.py loads with ctypes, not an extension module)
with cargo, in release, and puts it in the package.

In the repository the crate is two folders up. An sdist carries a copy of
what cargo needs under rust/ (the sdist command below adds it), so
`python -m build` (an sdist, then a wheel built from it) and
`pip install libbilliard-*.tar.gz` work away from the repository too.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension

HERE = os.path.dirname(os.path.abspath(__file__))


def crate_files():
    """What cargo needs to build the library (the crate, not its tests or
    docs): bindings/crate-files, which the Ruby gem reads too."""
    with open(os.path.join(HERE, "..", "crate-files")) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def crate_dir():
    """Where the crate is, relative to this folder: rust/ in an sdist,
    else the repository around this folder."""
    if os.path.exists(os.path.join(HERE, "rust", "Cargo.toml")):
        return "rust"
    return os.path.join("..", "..")


class SdistWithCrate(sdist):
    """An sdist that holds the crate under rust/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        source = os.path.join(HERE, crate_dir())
        for name in crate_files():
            src, dst = os.path.join(source, name), os.path.join(base_dir, "rust", name)
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("target", "__pycache__"))
            else:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)


setup(
    rust_extensions=[RustExtension("libbilliard._libbilliard",
                                   path=os.path.join(crate_dir(), "Cargo.toml"),
                                   binding=Binding.NoBinding)],
    cmdclass={"sdist": SdistWithCrate},
)
