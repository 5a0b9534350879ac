"""params.yaml -> typed config: every bad key is named before any work starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tasks.engine import config, params_file, params_update
from tests.conftest import REPO


def parse(raw: dict) -> config.Config:
    return config.parse(raw, Path("."))


def test_repo_params_are_valid_and_typed() -> None:
    cfg = config.load(REPO / "params.yaml")
    assert cfg.domain_name == "digits"
    assert cfg.cycle_ids == ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]
    assert cfg.prev_of("c3") == "c2"
    assert cfg.domain.labels_per_class == 5
    assert cfg.domain.acceptance == "balanced"
    assert cfg.params.validate_.max_slice_tvd == 0.1


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"promote": {"max_slice_dorp": 0.1}}, "promote.max_slice_dorp"),
        ({"bogus": {}}, "bogus"),
        ({"digits": {"train": {"steps": "many"}}}, "digits.train.steps"),
        ({"digits": {"labels_per_class": 0}}, "digits.labels_per_class"),
        ({"validate": {"max_quarantine_share": 3}}, "validate.max_quarantine_share"),
        ({"digits": {"acceptance": "greedy"}}, "digits.acceptance"),
        ({"digits": {"prior": [0.5, 0.5]}}, "digits"),
        ({"cycles": {"c1": {"prev": "c0"}, "c3": {"prev": "c2"}}}, "cycles"),
        ({"trainer": {"accelerator": "tpu"}}, "trainer.accelerator"),
    ],
)
def test_bad_params_are_rejected_naming_the_key(raw: dict, named: str) -> None:
    with pytest.raises(config.ConfigError) as error:
        parse(raw)
    assert named in str(error.value)


def test_unknown_domain_lists_the_available_ones() -> None:
    with pytest.raises(config.ConfigError, match=r"domain.name: unknown domain 'chess'.*digits"):
        parse({"domain": {"name": "chess"}})


def test_a_params_file_is_read_again_after_any_edit(tmp_path: Path) -> None:
    """load() parses a text once (a flow reads params around every stage): an edit, even one
    that keeps the file's size and lands within the same clock tick, is read; a file broken
    after a good load is refused, not served from memory."""
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    first = config.load(path)
    assert config.load(path) is first  # unchanged text: parsed once
    text = path.read_text()
    path.write_text(text.replace("seed: 0", "seed: 7", 1))  # same size
    assert config.load(path).seed == 7 and first.seed == 0
    path.write_text(text + "bogus: {}\n")
    with pytest.raises(config.ConfigError, match="bogus"):
        config.load(path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(REPO / "params.yaml", other / "params.yaml")
    assert config.load(other / "params.yaml").root == other  # same text, its own root


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("domain: [unclosed\n")
    with pytest.raises(config.ConfigError, match=str(bad)):
        config.load(bad)


def test_overrides_are_validated_then_written_keeping_comments(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    changes = params_update.update_params_file(params, ["digits.acceptance=threshold"], cycles=3)
    text = params.read_text()
    assert "# the package under tasks/domains/ that runs" in text  # comments survive
    raw = yaml.safe_load(text)
    assert raw["digits"]["acceptance"] == "threshold"
    assert raw["cycles"] == {"c1": {"prev": "c0"}, "c2": {"prev": "c1"}, "c3": {"prev": "c2"}}
    assert changes == ["digits.acceptance='threshold'", "cycles=c1..c3"]


def test_a_bad_override_leaves_the_file_untouched(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_bytes()
    with pytest.raises(config.ConfigError, match="digits.train.lr"):
        params_update.update_params_file(params, ["digits.train.lr=-1"], cycles=None)
    with pytest.raises(config.ConfigError, match="expected section.key=value"):
        params_update.update_params_file(params, ["no-equals-sign"], cycles=None)
    assert params.read_bytes() == before


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("domain: [unclosed\n")
    with pytest.raises(config.ConfigError) as error:
        config.load(bad)
    assert str(error.value) == (
        f"{bad}: not valid YAML at line 2, column 1: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 1)"
    )


def test_aliases_and_merge_keys_are_not_repeated_keys(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "base: &base {lr: 0.1, steps: 5}\na: *base\nb: *base\nc:\n  <<: *base\n  lr: 0.2\n"
    )
    raw = params_file.read_params(params)
    assert raw["a"] == raw["b"] == {"lr": 0.1, "steps": 5}
    assert raw["c"] == {"lr": 0.2, "steps": 5}  # a merge key's keys are overridden by design


def test_a_key_repeated_in_a_list_item_is_named_with_its_index(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("arith:\n  operations:\n  - {add: 1}\n  - add: 1\n    add: 2\n")
    with pytest.raises(config.ConfigError, match=r"'arith\.operations\[1\]\.add' at lines 4 and 5"):
        params_file.read_params(params)


def test_the_cycle_count_is_bounded_in_the_option_and_in_the_file() -> None:
    assert len(params_update.cycles_map(config.MAX_CYCLES)) == config.MAX_CYCLES
    with pytest.raises(config.ConfigError, match=r"--cycles 1001: must be 0 to 1000"):
        params_update.cycles_map(config.MAX_CYCLES + 1)
    with pytest.raises(config.ConfigError, match=r"cycles: Value error, 1001 cycles listed"):
        parse(
            {"cycles": params_update.cycles_map(config.MAX_CYCLES) | {"c1001": {"prev": "c1000"}}}
        )
