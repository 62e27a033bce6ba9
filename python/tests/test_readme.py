"""The README's Python examples, run as a user would paste them."""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def example(name):
    text = open(README).read()
    found = re.search(r"<!-- readme-python:%s -->\s*```python\n(.*?)```" % name,
                      text, re.S)
    assert found, f"README has no readme-python:{name} block"
    return found.group(1)


def run(name, env=None):
    done = subprocess.run([sys.executable, "-c", example(name)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")


def test_numpy_example():
    out = run("numpy")
    assert out[0] == "1.4076"
    assert out[1] == "TARGET_OUT_OF_RANGE"


def test_pyopencl_example():
    pytest.importorskip("pyopencl")
    import clxent
    spec = clxent.Context().device["spec"]
    if spec == "host":
        pytest.skip("the host backend has no OpenCL queue")
    # pyopencl numbers platforms and devices as clxent does (the ICD
    # order) and asks only where there is a choice
    import pyopencl as cl
    platform, device = (int(part) for part in spec.split(":"))
    platforms = cl.get_platforms()
    choice = [str(platform)] if len(platforms) > 1 else []
    if len(platforms[platform].get_devices()) > 1:
        choice.append(str(device))
    assert run("pyopencl", {"PYOPENCL_CTX": ":".join(choice)})[0] == "1.4076"


def test_torch_example():
    pytest.importorskip("torch")
    out = run("torch")
    first, last = (float(line.rsplit(" ", 1)[1]) for line in out[:2])
    assert out[0].startswith("step 0:") and out[1].startswith("step 19:")
    assert first > 6.5 and last < first / 2
