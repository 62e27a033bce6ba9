# The cffi extension clxent._native is built by clxent_build.py (see there
# for how it finds the library); everything else is in pyproject.toml.
from setuptools import setup
from setuptools.command.build_ext import build_ext


class AlwaysBuildExt(build_ext):
    """Rebuilds every time: pip builds in this tree, and an object left in
    build/ from another libclxent would otherwise be reused."""

    def finalize_options(self):
        super().finalize_options()
        self.force = True


setup(cffi_modules=["clxent_build.py:ffibuilder"], cmdclass={"build_ext": AlwaysBuildExt})
