"""Bad input the issue found untested, through the CLI: a one-line `error:` naming the culprit, exit 1, nothing
written."""
import pytest

from darkc.cli import main


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture
def corrupt_set(tmp_path, synth_bayer):
    """The session's tiny SID set with one short exposure cut to 100 bytes."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_bayer.dir, data)
    victim = sorted((data / "Sony" / "short").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:100])
    return data, victim


def test_train_with_missing_data_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "-o", str(out), "--data", str(tmp_path / "nowhere"), "--steps", "1"]) == 1
    one_line_error(capsys, str(tmp_path / "nowhere"))
    assert not out.exists()


def test_train_with_a_corrupt_raw(corrupt_set, tmp_path, capsys):
    data, victim = corrupt_set
    out = tmp_path / "run"
    assert main(["train", "-o", str(out), "--data", str(data), "--steps", "1", "--batch-size", "1", "--patch", "64",
                 "--widths", "4,4,4,4,4", "--val", "none", "--threads", "1"]) == 1
    one_line_error(capsys, victim.name)
    assert not out.exists()


def test_distill_with_a_corrupt_raw(corrupt_set, tmp_path, capsys):
    from helpers import tiny_checkpoint

    data, victim = corrupt_set
    teacher = tiny_checkpoint(tmp_path / "t", {"arch": "sid-unet", "cfa": "bayer", "widths": [4, 4, 4, 4, 4]})
    out = tmp_path / "d"
    assert main(["distill", "--model", str(teacher), "--student-widths", "4,4,4,4,4", "--data", str(data),
                 "--steps", "1", "--batch-size", "1", "--patch", "64", "--val-every", "0", "--no-eval",
                 "--latency-size", "none", "--threads", "1", "-o", str(out)]) == 1
    one_line_error(capsys, victim.name)
    assert not out.exists()


@pytest.mark.parametrize("body, fragment", [(None, "does not exist"), ("[pipeline\nteacher = 1", "not valid TOML")])
def test_pipeline_with_missing_or_invalid_recipe(tmp_path, capsys, body, fragment):
    recipe = tmp_path / "r.toml"
    if body is not None:
        recipe.write_text(body)
    out = tmp_path / "run"
    assert main(["pipeline", str(recipe), "-o", str(out)]) == 1
    one_line_error(capsys, str(recipe), fragment)
    assert not out.exists()


def test_synth_into_an_unwritable_place(tmp_path, capsys):
    blocker = tmp_path / "a-file"                 # a file where the output's parent folder should be: even root
    blocker.write_text("x")                       # cannot create a folder inside it
    assert main(["synth", "-o", str(blocker / "s"), "--count", "1", "--size", "64"]) == 1
    one_line_error(capsys, str(blocker / "s"))
    assert blocker.read_text() == "x"
