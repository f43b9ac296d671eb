"""Small fixtures shared by the test files, the cache isolation every test runs under, and the CI rule that a
skipped test fails."""
import hashlib
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


# The emulated ARM setup (QEMU + an aarch64 userland, ~8 min to build): the only cache the tests share with the
# user's, read-only (tests run it, never write into it); resolved once, before any test moves the caches.
_ARM_CACHE = str(Path(os.environ.get("DARKC_ARM_CACHE")
                      or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "darkc" / "arm"))


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Every cache darkc writes (bench exports, the reference set, anything under XDG_CACHE_HOME) goes to a fresh
    folder per test, so that no test reads what another (or the user) left behind, nor writes into ~/.cache."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    monkeypatch.setenv("DARKC_CACHE", str(root / "darkc"))
    monkeypatch.setenv("DARKC_ARM_CACHE", _ARM_CACHE)
    yield root


@pytest.fixture(scope="session", autouse=True)
def shared_dead_leaves():
    """``darkc.data.sources.dead_leaves`` computed once per argument set in this pytest process.

    It is a pure function of its arguments (seeded), and the slowest part of most stage tests: every prune
    (rescale inputs), distill and train on the default synthetic data draws 768x768 dead-leaves scenes (~3-8 s
    each on one core) that the previous test drew too. Each call still returns a fresh array (callers write into
    it); subprocesses compute their own."""
    import inspect

    import darkc.data.sources as sources

    real = sources.dead_leaves
    signature = inspect.signature(real)
    memo: dict = {}

    def dead_leaves(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()                  # the function's own defaults, whatever they become
        key = repr(sorted(bound.arguments.items()))
        if key not in memo:
            if len(memo) >= 48:                 # ~7 MB per 768x768 scene
                memo.pop(next(iter(memo)))
            memo[key] = real(*args, **kwargs)
        return memo[key].copy()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "dead_leaves", dead_leaves)
        yield memo


def _tree_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def _reference_template(tmp_path_factory):
    """The Bayer reference validation set as ``darkc.evaluate.reference_dir`` writes it, once per session (about
    15 s of dead-leaves scenes and DNG writing on one core, which each test that evaluates on it paid anew). Tests
    get it through :func:`reference_set`; the teardown fails if any test changed a file of it."""
    from darkc.evaluate import reference_dir

    root = tmp_path_factory.mktemp("reference_template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DARKC_CACHE", str(root))
        folder = reference_dir("bayer")
    assert folder.is_relative_to(root) and (folder / "synth.json").is_file()
    digest = _tree_sha256(folder)
    yield folder
    assert _tree_sha256(folder) == digest, f"a test wrote into the shared reference set {folder}"


@pytest.fixture
def reference_set(isolated_caches, _reference_template):
    """This test's cache already holds the Bayer reference set (``$DARKC_CACHE/reference-bayer-v2``, hard links to
    the session's copy), so ``darkc eval``, the pipeline's eval stage and the benchmark scripts (subprocesses
    inherit ``DARKC_CACHE``) read it instead of writing it. For tests whose subject is not the set's creation, which
    still runs once per session, in the template (tests/test_reference_set.py pins the set's content)."""
    dest = Path(os.environ["DARKC_CACHE"]) / _reference_template.name
    dest.parent.mkdir(parents=True, exist_ok=True)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:            # another file system: copy
            shutil.copy2(src, dst)

    shutil.copytree(_reference_template, dest, copy_function=link)
    return dest


def _skip_fails_in_ci(report) -> None:
    """Under CI (set by .ci/run) a skip is a failure: a missing extra, tool or setup must not pass silently."""
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which runs every test: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions: one torch thread is fastest and does not fight other processes for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synth_bayer(tmp_path_factory):
    """A tiny SID-layout Bayer set from ``darkc.data.synth.write_dataset``: 2 dead-leaves scenes of
    96x128 px, ratios 100/250/300 (6 short + 2 long DNGs). Read it, do not write into it."""
    from darkc.data.profiles import get_profile
    from darkc.data.sources import dead_leaves_images
    from darkc.data.synth import SID_RATIOS, write_dataset

    out = tmp_path_factory.mktemp("synth_bayer")
    images = dead_leaves_images(2, (96, 128), "train")
    profile = get_profile(None, "bayer")
    seed, size = 3, 128
    list_file = write_dataset(out, images, profile, seed=seed, size=size, progress=False)
    return SimpleNamespace(dir=out, list_file=list_file, images=images, profile=profile, seed=seed,
                           size=size, ratios=SID_RATIOS)


@pytest.fixture
def arm_setup():
    """The emulated ARM setup; skipped when missing, except in CI (where .ci/run builds it first)."""
    from darkc.errors import DarkcError
    from darkc.latency import arm

    try:
        return arm.find_setup()
    except DarkcError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (.ci/run must run `darkc bench --setup-arm` before the tests)")
        pytest.skip(str(exc))
