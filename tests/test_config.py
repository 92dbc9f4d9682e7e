"""Configs: shipped YAML files, checked keys and types, ``--set`` overrides, round trips, and the
``train`` command's one-line errors for bad configs and run folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from centrifuge.cli import main
from centrifuge.config import (
    Config,
    apply_overrides,
    config_names,
    dump_config,
    load_config,
    parse_overrides,
)
from centrifuge.errors import ConfigError


def test_shipped_configs_load() -> None:
    assert {"tiny", "small", "paper"} <= set(config_names())
    for name in config_names():
        assert isinstance(load_config(name), Config)
    assert load_config("tiny").model.name == "tiny"


def test_overrides_apply_with_yaml_scalars() -> None:
    config = load_config(
        "tiny",
        [
            "train.lr=1e-2",
            "data.crop=48",
            "train.grad_clip=null",
            "train.milestones=[10, 20]",
            "model.decoder_channels=[8, 8]",
            "data.bank=false",
            "train.optimizer=sgd",
        ],
    )
    assert config.train.lr == 0.01 and config.data.crop == 48
    assert config.train.grad_clip is None and config.train.milestones == (10, 20)
    assert config.model.decoder_channels == (8, 8)
    assert config.data.bank is False and config.train.optimizer == "sgd"
    assert config.data.clip_len == load_config("tiny").data.clip_len  # the rest keeps the file's


def test_apply_overrides_changes_only_the_given_keys() -> None:
    base = load_config("tiny")
    changed = apply_overrides(base, ["train.steps=7"])
    assert changed.train.steps == 7
    assert changed.data == base.data and changed.model == base.model
    assert apply_overrides(base, []) == base


def test_an_int_is_accepted_where_a_float_is_expected() -> None:
    lr = load_config("tiny", ["train.lr=1"]).train.lr
    assert lr == 1.0 and isinstance(lr, float)


def test_exponent_notation_reads_as_a_float_in_files_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("train:\n  lr: 3e-4\n  milestone_lrs: [1E-5, 2.5e-6]\n")
    config = load_config(path, ["train.weight_decay=1e-2"])
    assert config.train.lr == 3e-4 and config.train.milestone_lrs == (1e-5, 2.5e-6)
    assert config.train.weight_decay == 0.01
    assert load_config(path, ["train.optimizer=1e3x"]).train.optimizer == "1e3x"


@pytest.mark.parametrize(
    "override",
    ["train.lrr=0.1", "optim.lr=0.1", "data.clip_length=8", "model.depth=3"],
)
def test_unknown_override_keys_are_errors(override: str) -> None:
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config("tiny", [override])


@pytest.mark.parametrize("override", ["train.lr", "lr=0.1", "train.opt.lr=0.1", "=1"])
def test_malformed_overrides_are_errors(override: str) -> None:
    with pytest.raises(ConfigError, match="override"):
        parse_overrides([override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps=1.5", "train.steps must be of type int"),
        ("train.steps=true", "train.steps must be of type int"),
        ("train.lr=fast", "train.lr must be of type float"),
        ("data.bank=1", "data.bank must be of type bool"),
        ("data.crop=null", "data.crop cannot be null"),
        ("train.milestones=3", "train.milestones must be a list"),
        ("train.milestones=[1, x]", "train.milestones must be of type int"),
        ("train=3", "must look like section.key"),
    ],
)
def test_types_are_checked(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("tiny", [override])


def test_unknown_keys_in_a_yaml_file_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  name: tiny\ntrain:\n  steps: 5\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key train\.learning_rate"):
        load_config(path)
    path.write_text("model:\n  name: tiny\nschedule:\n  steps: 5\n")
    with pytest.raises(ConfigError, match="unknown config key schedule"):
        load_config(path)


def test_bad_files_and_names_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config 'huge'"):
        load_config("huge")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("train: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "section.yaml").write_text("train: 3\n")
    with pytest.raises(ConfigError, match="train must be a mapping"):
        load_config(tmp_path / "section.yaml")


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_dumped_config_loads_back_to_the_same_config(name: str, tmp_path: Path) -> None:
    config = load_config(
        name,
        [
            "train.milestones=[5, 9]",
            "train.milestone_lrs=[0.1, 0.01]",
            "data.alpha_range=[0.3, 0.7]",
            "model.decoder_channels=[8, 8]",
        ],
    )
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def _train(tmp_path: Path, *args: str) -> list[str]:
    return ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), *args]


def test_cli_train_reports_an_unknown_override_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(_train(tmp_path, "--set", "train.lrr=0.1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown config key train.lrr" in err
    assert not (tmp_path / "run").exists()


def test_cli_train_reports_a_bad_config_file_in_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("data:\n  crop: big\n")
    assert main(_train(tmp_path, "--config", str(path))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.crop must be of type int" in err


def test_cli_resume_without_a_run_folder_fails_clearly(tmp_path: Path, capsys) -> None:
    assert main(_train(tmp_path, "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run to resume" in err
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_folder_that_holds_a_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(dump_config(load_config("tiny")))
    assert main(_train(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err and "--force" in err
