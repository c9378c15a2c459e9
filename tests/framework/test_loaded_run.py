"""`psa.load_run(folder)`: a finished run used from Python predicts what `psa predict` writes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import psa
from conftest import ROOT, run_cli
from psa.errors import PsaError


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(folder / f"photo{k}.png")
    return folder


def test_a_loaded_run_predicts_what_the_tool_writes(finished_run, photos, tmp_path):
    tool_out, api_out = tmp_path / "tool", tmp_path / "api"
    done = run_cli("predict", str(finished_run / "recipe.yaml"), "--images", str(photos), "--out", str(tool_out))
    assert done.returncode == 0, done.stderr
    run = psa.load_run(finished_run)
    for path in sorted(photos.glob("*.png")):
        written = np.asarray(Image.open(tool_out / path.name))
        for given in (path, str(path), Image.open(path), np.asarray(Image.open(path))):
            prediction = run.predict(given)
            assert prediction.shape == (40, 52)
            np.testing.assert_array_equal(prediction.label, written)
        assert prediction.probabilities.shape == (len(run.classes), 40, 52)
        np.testing.assert_allclose(prediction.probabilities.sum(0), 1.0, atol=1e-5)
        np.testing.assert_array_equal(prediction.probabilities.argmax(0), prediction.label)
    summary = run.predict_folder(photos, api_out)
    assert summary["folder"] == str(api_out)
    for path in photos.glob("*.png"):
        assert (api_out / path.name).read_bytes() == (tool_out / path.name).read_bytes()


def test_load_run_works_from_any_folder(finished_run, photos, tmp_path):
    code = (f"import psa; r = psa.load_run({str(finished_run)!r}); "
            f"print(r.predict({str(photos / 'photo0.png')!r}).shape)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(40, 52)"


def test_what_is_not_a_run_or_an_image_is_refused_in_one_line(finished_run, tmp_path):
    with pytest.raises(PsaError, match="is not a psa run folder: it has no recipe.yaml"):
        psa.load_run(tmp_path)
    with pytest.raises(PsaError, match=r"\(H, W, 3\) uint8 RGB array, got float64 of shape \(4, 4\)"):
        psa.load_run(finished_run).predict(np.zeros((4, 4)))
