"""Small fixtures shared by the test files."""
from types import SimpleNamespace

import pytest
import torch


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
