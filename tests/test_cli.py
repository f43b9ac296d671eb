"""The darkc CLI: help lists working commands, synth writes the SID layout, errors are one line."""
import subprocess
import sys

from darkc.cli import main
from darkc.data import load_pairs, read_raw


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("synth", "train", "eval", "enhance"):
        assert cmd in out


def test_synth_writes_sid_layout(tmp_path, capsys):
    assert main(["synth", "-o", str(tmp_path / "s"), "--count", "2", "--size", "128", "--seed", "1"]) == 0
    pairs = load_pairs(tmp_path / "s")
    assert len(pairs) == 6 and {p.ratio for p in pairs} == {100, 250, 300}
    assert (tmp_path / "s" / "Sony_test_list.txt").is_file()
    f = read_raw(pairs[0].short)
    assert f.cfa == "bayer" and f.mosaic.shape == (84, 128)


def test_synth_xtrans_and_user_images(tmp_path):
    import cv2
    import numpy as np

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cv2.imwrite(str(imgs / "a.png"), (np.random.default_rng(0).random((80, 120, 3)) * 255).astype(np.uint8))
    assert main(["synth", "-o", str(tmp_path / "x"), "--cfa", "xtrans", "--images", str(imgs)]) == 0
    pairs = load_pairs(tmp_path / "x")
    assert len(pairs) == 3 and read_raw(pairs[0].short).cfa == "xtrans"


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["synth", "-o", str(tmp_path / "s"), "--profile", "nikon"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown camera profile 'nikon'") and "\n" not in err
    assert main(["synth", "-o", str(tmp_path / "s"), "--images", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "s" / "Sony_test_list.txt").exists()


def test_console_script_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "darkc.cli", "enhance", str(tmp_path / "no.dng"), "-o",
                        str(tmp_path / "o.png"), "--ratio", "100"], capture_output=True, text=True)
    assert r.returncode == 1 and "no.dng" in r.stderr and not (tmp_path / "o.png").exists()
