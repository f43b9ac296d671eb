"""The reference validation set every quality figure rests on is the pinned one: a change to its photos, seeds,
sizes, camera profiles or noise model must come with new figures and a new pin (darkc.evaluate.REFERENCE_SHA256)."""
import pytest

from darkc.evaluate import REFERENCE_SHA256, reference_digest


@pytest.mark.parametrize("cfa", ["bayer", "xtrans"])
def test_reference_set_matches_its_pinned_hash(cfa):
    assert reference_digest(cfa) == REFERENCE_SHA256[cfa], (
        f"the {cfa} reference set changed: re-run the quality benchmarks, then pin reference_digest({cfa!r})")


def test_reference_digest_sees_a_changed_seed(monkeypatch):
    import darkc.data.reference as ref

    monkeypatch.setattr(ref, "REFERENCE_SEED", ref.REFERENCE_SEED + 1)
    assert reference_digest("bayer") != REFERENCE_SHA256["bayer"]
