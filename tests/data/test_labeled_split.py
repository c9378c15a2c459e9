"""The labelled subset of semi-supervised tasks: list file or seeded fraction, written out."""

from __future__ import annotations

import pytest

from psa.config import LabeledConfig
from psa.data.labeled_split import choose_labeled, write_split
from psa.errors import PsaError

IDS = [f"img{i:02d}" for i in range(20)]


def test_a_seeded_fraction_is_reproducible_and_partitions_the_split():
    first = choose_labeled(IDS, LabeledConfig(fraction=0.25, seed=4), "x.labeled")
    again = choose_labeled(IDS, LabeledConfig(fraction=0.25, seed=4), "x.labeled")
    other = choose_labeled(IDS, LabeledConfig(fraction=0.25, seed=5), "x.labeled")
    assert first == again and first.labeled != other.labeled
    assert len(first.labeled) == 5
    assert sorted(first.labeled + first.unlabeled) == list(range(20))


def test_a_list_file_wins_and_the_split_is_written(tmp_path):
    listed = tmp_path / "labeled.txt"
    listed.write_text("img03\n# a comment\nimg11\n\n")
    split = choose_labeled(IDS, LabeledConfig(list_file=str(listed), fraction=0.5), "x.labeled")
    assert split.labeled == [3, 11] and len(split.unlabeled) == 18
    write_split(tmp_path / "run", IDS, split)
    assert (tmp_path / "run" / "labeled.txt").read_text() == "img03\nimg11\n"
    assert (tmp_path / "run" / "unlabeled.txt").read_text().splitlines() == [
        i for i in IDS if i not in ("img03", "img11")]


@pytest.mark.parametrize("text, message", [
    ("img03\nnope\n", "id 'nope' is not in the training split"),
    ("\n# nothing\n", "lists no image id"),
    ("img03\nimg03\n", "lists an id twice"),
])
def test_bad_list_files_are_one_line_errors(tmp_path, text, message):
    listed = tmp_path / "labeled.txt"
    listed.write_text(text)
    with pytest.raises(PsaError, match=message):
        choose_labeled(IDS, LabeledConfig(list_file=str(listed)), "x.labeled")
    with pytest.raises(PsaError, match="'x.labeled.list_file': cannot read"):
        choose_labeled(IDS, LabeledConfig(list_file=str(tmp_path / "missing.txt")), "x.labeled")


def test_a_fraction_that_labels_nothing_is_refused():
    with pytest.raises(PsaError, match="'x.labeled.fraction'=0.01 labels no image"):
        choose_labeled(IDS, LabeledConfig(fraction=0.01), "x.labeled")


def _class_counts(labels, chosen):
    counts = {}
    for i in chosen:
        for c in labels[i]:
            counts[c] = counts.get(c, 0) + 1
    return counts


def test_a_stratified_fraction_gives_every_class_its_share():
    # 100 images: class 1 on 60, class 2 on 30 (10 of them with class 1), class 3 on 10
    labels = [[1]] * 50 + [[1, 2]] * 10 + [[2]] * 20 + [[3]] * 10 + [[1]] * 10
    ids = [f"img{i:03d}" for i in range(len(labels))]
    quota = {1: 7.0, 2: 3.0, 3: 1.0}  # 10 % of 70, 30, 10, counted by hand
    for seed in range(5):
        cfg = LabeledConfig(fraction=0.1, seed=seed, stratify=True)
        split = choose_labeled(ids, cfg, "x.labeled", lambda i: labels[i])
        assert len(split.labeled) == 10 and sorted(split.labeled + split.unlabeled) == list(range(100))
        assert _class_counts(labels, split.labeled) == quota
        assert split == choose_labeled(ids, cfg, "x.labeled", lambda i: labels[i])
    # a uniform draw of 10 misses the rare class 3 about a third of the time ((90 choose 10) / (100 choose 10))
    uniform = [choose_labeled(ids, LabeledConfig(fraction=0.1, seed=s), "x.labeled").labeled for s in range(30)]
    assert any(_class_counts(labels, chosen).get(3, 0) == 0 for chosen in uniform)


def test_stratify_needs_image_labels():
    with pytest.raises(PsaError, match="'x.labeled.stratify'"):
        choose_labeled(IDS, LabeledConfig(fraction=0.5, stratify=True), "x.labeled")
