"""CI cannot pass by skipping, and no test touches the user's caches."""
import os
from pathlib import Path

import pytest

from darkc.latency import arm
from darkc.latency.artifact import cache_dir

pytest_plugins = ["pytester"]
CONFTEST = (Path(__file__).with_name("conftest.py")).read_text()
PROBE = """
import pytest

def test_skips():
    pytest.skip("a missing extra")

def test_passes():
    pass
"""


@pytest.mark.parametrize("ci, outcome", [("1", dict(failed=1, passed=1)), ("", dict(skipped=1, passed=1))])
def test_a_skip_fails_under_ci(pytester, monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_probe=PROBE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    if ci:
        result.stdout.fnmatch_lines(["*skipped under CI*a missing extra*"])


def test_a_module_level_skip_fails_under_ci(pytester, monkeypatch):
    monkeypatch.setenv("CI", "1")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_probe='import pytest\npytest.skip("no litert", allow_module_level=True)\n')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skipped under CI*no litert*"])


def test_caches_are_per_test_and_outside_home(isolated_caches):
    home_cache = Path.home() / ".cache" / "darkc"
    assert cache_dir().is_relative_to(isolated_caches) and not cache_dir().is_relative_to(home_cache)
    assert Path(os.environ["DARKC_CACHE"]).is_relative_to(isolated_caches)
    from darkc import evaluate
    import inspect
    assert "DARKC_CACHE" in inspect.getsource(evaluate.reference_dir)
    # the one shared cache: the emulated ARM setup, read-only, where the user (or .ci/run) built it
    assert not arm.cache_dir().is_relative_to(isolated_caches)
