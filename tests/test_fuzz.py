"""``separate`` in-process over about 200 generated inputs, valid, odd and damaged (fixed seed):
each one gives exit 0 with a complete result, or exit 2 with one line naming it; nothing is written
outside ``-o`` and no partial or incomplete result is left (issue 13). A longer campaign:
``python tests/corpus.py DIR --mutations 5000`` then ``centrifuge separate DIR/*/* -o OUT``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import centrifuge.inference.engine
import centrifuge.pretrained
import corpus
from centrifuge.cli import main
from centrifuge.inference.results import safe_name
from centrifuge.models.fuse import fold_batchnorm
from centrifuge.models.registry import build_model

MUTATIONS = 170  # with the ~30 base files: about 200 inputs
SETTINGS = ["--clip-len", "8", "--overlap", "2"]
FINAL = {"layer_1.mp4", "layer_2.mp4", "preview.mp4", "contact.png", "report.json"}
FINAL_STILL = {"layer_1.png", "layer_2.png", "contact.png", "report.json"}


def test_separate_survives_a_corpus_of_odd_and_damaged_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    # random weights: the plumbing is under test, not quality; BatchNorm folded once, not per input
    model = fold_batchnorm(build_model("tiny"))
    monkeypatch.setattr(centrifuge.pretrained, "load_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(centrifuge.inference.engine, "fold_batchnorm", lambda m: m.eval())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, more only contend
    try:
        _run_corpus(tmp_path, capsys)
    finally:
        torch.set_num_threads(threads)


def _run_corpus(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = corpus.base_files(tmp_path / "in" / "base")
    cases += corpus.mutations(cases, tmp_path / "in" / "mutated", MUTATIONS, seed=0)
    inputs = {p for p in (tmp_path / "in").rglob("*")}
    codes: dict[int, int] = {}
    for i, case in enumerate(cases):
        out = tmp_path / "work" / f"out{i:03d}"  # two inputs may share a name
        code = main(
            ["separate", str(case.path), "-o", str(out), "--clip-len", "8", "--overlap", "2"]
        )
        codes[code] = codes.get(code, 0) + 1
        captured = capsys.readouterr()
        folder = out / safe_name(case.path.stem)
        assert code in (0, 2), f"{case.kind}: {captured.err}"
        if code == 0:
            report = json.loads((folder / "report.json").read_text())
            final = FINAL if report["preview"] is not None else FINAL_STILL  # stills: PNG layers
            assert {p.name for p in folder.iterdir()} == final, case.kind
            assert report["input"] == str(case.path) and report["frames"] > 0, case.kind
        else:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and str(case.path) in lines[0], f"{case.kind}: {captured.err}"
            assert not case.valid, f"{case.kind}: {lines[0]}"
            assert not folder.exists(), case.kind
        if out.exists():  # no leftovers: no work folder, lock or partial file
            assert [p.name for p in out.iterdir()] == ([folder.name] if code == 0 else [])
        assert {p for p in (tmp_path / "in").rglob("*")} == inputs  # nothing beside the inputs
    assert {p.name for p in tmp_path.iterdir()} == {"in", "work"}
    assert all(p.name.startswith("out") for p in (tmp_path / "work").iterdir())
    assert codes.get(0, 0) >= len([c for c in cases if c.valid]) and codes.get(2, 0) > 20, codes
