"""The arith domain: its grammar, data, verifier rules through the real engine, bias checks,
and a tiny train + generate + evaluate run that must actually learn."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tasks import domains
from tasks.domains.arith import DOMAIN, bias, data, grammar
from tasks.domains.arith.config import Config
from tasks.domains.protocol import Prepared
from tasks.engine.config import TrainerParams, ValidateParams, parse
from tasks.steps.validate import BATCH_REJECTED, validate_batch

CFG = Config()


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    return DOMAIN.prepare(CFG, seed=0)


# --- grammar -------------------------------------------------------------------------------


def random_problem(rng: random.Random, max_digits: int = 5) -> tuple[int, int]:
    def number() -> int:
        digits = rng.randint(1, max_digits)
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)

    return number(), number()


def test_render_parse_round_trip_on_many_problems() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        a, b = random_problem(rng)
        solution = grammar.solve(a, b)
        text = grammar.render(solution)
        assert grammar.parse(text, 5) == solution
        assert grammar.render(grammar.parse(text, 5)) == text
        assert grammar.steps_consistent(a, b, solution)
        assert solution.answer == str(a + b)
        assert len(solution.steps) == grammar.length(a, b)
        assert len(grammar.prompt(a, b, 5)) == grammar.prompt_width(5)
        assert len(text) + 1 <= grammar.max_solution_width(5)
        assert grammar.parse_problem(grammar.problem_text(a, b), 5) == (a, b)
        assert grammar.decode(grammar.encode(text + grammar.END + "99")) == text


def test_the_documented_example() -> None:
    assert grammar.prompt(678, 12345, 5) == "  678+12345="
    assert grammar.render(grammar.solve(678, 12345)) == (
        "8+5+0=13,7+4+1=12,6+3+1=10,0+2+1=03,0+1+0=01;13023"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "8+5+0=13",  # no answer
        "8+5+0=13;",  # empty answer
        "8+5+0=13;013",  # leading zero
        "8+5+0=3;13",  # one-digit total
        "8+5=13;13",  # no carry
        "8+5+0=13;13;1",
        "8+5+0=13,,7+4+1=12;123",
        "x+5+0=13;13",
        "8+5+0=13 ;13",
        "1+1+0=02,1+1+0=02,1+1+0=02,1+1+0=02,1+1+0=02,1+1+0=02;222222",  # 6 steps
        "1+1+0=02;1234567",  # answer too long
        None,
        13,
    ],
)
def test_parser_rejects_malformed_text(text: Any) -> None:
    with pytest.raises(grammar.MalformedSolution):
        grammar.parse(text, 5)


def steps_of(text: str) -> grammar.Solution:
    return grammar.parse(text, 5)


@pytest.mark.parametrize(
    "text",
    [
        "8+5+0=13,7+4+0=11,6+3+1=10,0+2+1=03,0+1+0=01;13023",  # carry in is not the carry out
        "8+5+0=13,7+4+1=12,6+3+1=10,0+2+1=03,0+1+0=01;13033",  # answer not what steps spell
        "8+5+0=13,7+4+1=12,6+3+1=10,0+2+1=03;3023",  # a column missing
        "8+5+0=13,7+4+1=12,6+3+1=11,0+2+1=03,0+1+0=01;13123",  # wrong total
        "8+4+0=12,7+4+1=12,6+3+1=10,0+2+1=03,0+1+0=01;13022",  # not the problem's digit
    ],
)
def test_inconsistent_steps_are_caught(text: str) -> None:
    assert not grammar.steps_consistent(678, 12345, steps_of(text))


# --- config and data -----------------------------------------------------------------------


def test_config_defaults_and_rejections() -> None:
    assert (CFG.seed_per_length, CFG.pool_size, CFG.eval_size, CFG.samples) == (30, 4000, 1000, 4)
    assert (CFG.train.width, CFG.train.layers, CFG.train.steps, CFG.train.lr) == (128, 2, 600, 2e-3)
    with pytest.raises(ValueError, match="only add is implemented"):
        Config.model_validate({"operations": ["add", "mul"]})
    with pytest.raises(ValueError, match="min_digits 3 > max_digits 2"):
        Config.model_validate({"min_digits": 3, "max_digits": 2})
    with pytest.raises(ValueError, match="extra"):
        Config.model_validate({"sampels": 4})
    assert domains.load("arith") is DOMAIN
    cfg = parse({"domain": {"name": "arith"}, "arith": {"samples": 2}}, Path("."))
    assert cfg.domain.samples == 2


def test_sizes_and_stratification(prepared: Prepared) -> None:
    assert (prepared.seed.height, prepared.pool.height, prepared.eval.height) == (150, 4000, 1000)
    per_length = {
        name: dict(frame.group_by("length").len().iter_rows())
        for name, frame in (("seed", prepared.seed), ("eval", prepared.eval))
    }
    assert per_length["seed"] == dict.fromkeys(range(1, 6), 30)
    # only 100 sums of two 1-digit numbers exist: eval takes half of what the seed leaves
    assert per_length["eval"] == {1: 35, 2: 242, 3: 241, 4: 241, 5: 241}
    assert prepared.seed.schema == prepared.eval.schema == data.schema()
    assert set(prepared.seed["method"]) == {"seed"} and set(prepared.seed["generator"]) == {"human"}


def test_seed_pool_eval_are_disjoint_and_correct(prepared: Prepared) -> None:
    sets = [set(f["problem"]) for f in (prepared.seed, prepared.pool, prepared.eval)]
    assert sum(map(len, sets)) == len(set.union(*sets)) == 5150
    for row in prepared.seed.iter_rows(named=True):
        a, b = grammar.parse_problem(row["problem"], 5)
        assert row["answer"] == a + b and row["length"] == grammar.length(a, b)
        assert grammar.steps_consistent(a, b, grammar.parse(row["solution"], 5))


def test_prepare_is_deterministic(prepared: Prepared) -> None:
    again = DOMAIN.prepare(CFG, seed=0)
    assert all(
        x.equals(y)
        for x, y in zip(prepared.__dict__.values(), again.__dict__.values(), strict=True)
    )
    assert not DOMAIN.prepare(CFG, seed=1).pool.equals(prepared.pool)


# --- validation through the engine ---------------------------------------------------------


def candidates(prepared: Prepared, per_length: int = 12) -> pl.DataFrame:
    """Eval rows with their true solutions, dressed as cycle-1 samples (a clean batch)."""
    rows = prepared.eval.filter(pl.int_range(pl.len()).over("length") < per_length).with_columns(
        pl.format("{}:c1:s0", "problem_id").alias("row_id"),
        pl.lit(1, pl.Int64()).alias("cycle"),
        pl.lit("c0:0123abcd").alias("generator"),
        pl.lit("sampled").alias("method"),
        pl.lit(0.9).alias("confidence"),
    )
    return rows


def with_solution(batch: pl.DataFrame, row: int, text: str) -> pl.DataFrame:
    solutions = batch["solution"].to_list()
    solutions[row] = text
    return batch.with_columns(pl.Series("solution", solutions))


def crafted(prepared: Prepared) -> pl.DataFrame:
    batch = candidates(prepared)
    assert batch["problem"][12:15].to_list() == ["92+68", "5+54", "88+9"]
    batch = with_solution(batch, 12, "2+8+0=10,9+6+1=16;160;")  # malformed
    batch = with_solution(batch, 13, "5+4+0=09,0+5+0=05;60")  # a wrong answer
    return with_solution(batch, 14, "8+9+0=17,8+0+0=09;97")  # right answer, carry dropped


def judge(batch: pl.DataFrame, cfg: Config = CFG, **params: Any) -> Any:
    return validate_batch(batch, DOMAIN, cfg, ValidateParams(**params), set(), "c1")


def test_each_row_gets_exactly_the_reason_it_deserves(prepared: Prepared) -> None:
    batch = crafted(prepared)
    outcome = judge(batch)
    quarantine = outcome.quarantine
    reasons = dict(zip(quarantine["row_id"], quarantine["reasons"].to_list(), strict=True))
    ids = batch["row_id"].to_list()
    assert reasons == {
        ids[12]: ["malformed"],
        ids[13]: ["wrong_answer"],
        ids[14]: ["right_answer_wrong_steps"],
    }
    report = outcome.report
    assert report["verdict"] == "accepted" and report["failed_rules"] == []
    assert (report["flagged_rows"], report["filtered_rows"]) == (0, 3)
    assert outcome.accepted["row_id"].to_list() == [
        i for n, i in enumerate(ids) if n not in (12, 13, 14)
    ]
    assert outcome.accepted.columns == batch.columns  # the check columns never leave validate
    assert report["bias_checks"] == []  # 57 accepted rows: too few to judge the mix


def test_outcome_only_accepts_right_answers_with_wrong_steps(prepared: Prepared) -> None:
    outcome = judge(crafted(prepared), Config(check_steps=False))
    assert "right_answer_wrong_steps" not in outcome.report["reason_counts"]
    assert outcome.accepted.height == 60 - 2


def test_generator_faults_are_quality_failures_that_reject_the_batch(prepared: Prepared) -> None:
    batch = candidates(prepared)
    ids = batch["row_id"].to_list()
    answers, samples = batch["answer"].to_list(), batch["sample"].to_list()
    answers[3] += 1  # the known answer is not the problem's sum
    samples[4] = CFG.samples  # a sample index out of range
    ids[6] = ids[5]  # a duplicate row id
    broken = batch.with_columns(
        pl.Series("answer", answers), pl.Series("sample", samples), pl.Series("row_id", ids)
    )
    outcome = judge(broken)
    reasons = outcome.quarantine["reasons"].to_list()
    assert [r[:-1] for r in reasons[3:7]] == [
        ["problem_mismatch"],
        ["sample_out_of_range"],
        ["duplicate_row_id"],
        ["duplicate_row_id"],
    ]
    assert outcome.report["verdict"] == "rejected"  # 4 of 60 rows: more than the 5% allowed
    assert all(r[-1] == BATCH_REJECTED for r in reasons) and len(reasons) == 60


# --- bias checks ---------------------------------------------------------------------------


def mix(counts: dict[int, int]) -> pl.DataFrame:
    return pl.DataFrame({"length": [n for n, c in counts.items() for _ in range(c)]})


@pytest.mark.parametrize(
    ("counts", "failed"),
    [
        ({1: 116, 2: 1587, 3: 1031, 4: 555, 5: 143}, set()),  # cycle 1, measured
        ({3: 40, 4: 300, 5: 900}, set()),  # late: only long problems left unsolved
        ({5: 400}, set()),
        ({1: 4, 3: 300, 4: 400, 5: 500}, set()),  # length 2 ran out before length 1 did
        ({2: 2000}, {"max_length_share", "longest_length_reached"}),  # one length only
        ({1: 30, 2: 1900, 3: 60, 4: 10, 5: 1}, {"max_length_share"}),
        ({2: 900, 3: 600, 4: 100}, {"longest_length_reached"}),  # the longest starved
        ({2: 199}, set()),  # too few rows to judge
    ],
)
def test_bias_checks(counts: dict[int, int], failed: set[str]) -> None:
    checks = bias.checks(mix(counts), CFG)
    assert {c.rule for c in checks if not c.passed} == failed


def test_a_collapsed_batch_is_rejected_by_the_engine(prepared: Prepared) -> None:
    batch = candidates(prepared, per_length=240).filter(pl.col("length") == 2)
    outcome = judge(batch)
    assert batch.height == 240
    assert outcome.report["verdict"] == "rejected" and outcome.accepted.height == 0
    failed = [r["reason"] for r in outcome.report["failed_rules"]]
    assert failed == ["length_collapse", "length_starved"]


# --- a tiny run that must learn ------------------------------------------------------------

TINY = Config.model_validate(
    {
        "max_digits": 2,
        "pool_size": 300,
        "eval_size": 100,
        "samples": 2,
        "train": {"steps": 400, "width": 48, "heads": 2, "warmup": 10, "lr": 5e-3},
    }
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train on the true worked solutions of the seed and pool problems, like the engine."""
    from tasks.engine import models, training

    prepared = DOMAIN.prepare(TINY, seed=0)
    pool = data.frame([grammar.parse_problem(p, 2) for p in prepared.pool["problem"]], "p", "seed")
    trainset = pl.concat([prepared.seed, pool])
    training.prepare(TrainerParams(), seed=0)
    network = DOMAIN.build_network(TINY)
    training.fit(
        DOMAIN.training_module(network, TINY),
        DOMAIN.train_loader(trainset, TINY, 0),
        DOMAIN.max_steps(trainset, TINY),
        TrainerParams(),
    )
    path = tmp_path_factory.mktemp("arith") / "model.pt"
    models.save(network, path, "arith", TINY, "c0")
    loaded, _, _ = models.load(path)
    return {"network": loaded, "prepared": prepared}


def test_a_tiny_model_learns_to_add(tiny_run: dict[str, Any]) -> None:
    network, prepared = tiny_run["network"], tiny_run["prepared"]
    result = DOMAIN.evaluate(network, prepared.eval, TINY)
    assert result.slices["1"] >= 0.8, result
    assert result.slices["2"] >= 0.5, result
    assert result.details["per_length"]["1"]["rows"] == 35
    assert result.metric == pytest.approx(result.details["right"] / 100)


def test_generate_samples_unsolved_problems_only(tiny_run: dict[str, Any]) -> None:
    network, prepared = tiny_run["network"], tiny_run["prepared"]
    trainset = pl.concat([prepared.seed, data.frame([(1, 2)], "p", "seed")])  # p0000 "solved"
    rows = DOMAIN.generate(network, prepared.pool, trainset, 3, "c2:abcd1234", TINY, seed=7)
    assert rows.schema == data.schema()
    assert rows.height == 2 * (prepared.pool.height - 1)
    assert "p0000" not in set(rows["problem_id"])
    assert rows["row_id"].n_unique() == rows.height and rows["row_id"][0].endswith(":c3:s0")
    assert set(rows["method"]) == {"sampled"} and set(rows["generator"]) == {"c2:abcd1234"}
    assert rows["confidence"].is_between(0, 1).all()
    again = DOMAIN.generate(network, prepared.pool, trainset, 3, "c2:abcd1234", TINY, seed=7)
    assert again.equals(rows)
    judged = DOMAIN.check_columns(rows, TINY)
    assert judged["check_answer_ok"].fill_null(False).mean() > 0.3  # type: ignore[operator]


def test_predict(tiny_run: dict[str, Any]) -> None:
    network = tiny_run["network"]
    out = DOMAIN.predict(network, {"problem": "7+8"}, TINY)
    assert out == {"answer": "15", "solution": "7+8+0=15;15"}
    assert set(DOMAIN.predict(network, {"problem": " 12 + 9 "}, TINY)) == {"answer", "solution"}
    for bad, message in [
        ({"problem": "123+4"}, "more than 2 digits"),
        ({"problem": "1*2"}, "joined by '\\+'"),
        ({"problem": "-1+2"}, "joined by"),
        ({"problem": 12}, "a problem is a string"),
        ({"question": "1+2"}, "expected"),
        ([], "expected"),
    ]:
        with pytest.raises(ValueError, match=message):
            DOMAIN.predict(network, bad, TINY)  # type: ignore[arg-type]
