"""sums unit tests: the format at any length, the executor's and the vote's keep rules, the
frontier rule (advance and retry), masked decoding, and forgetting caught by the gate's veto."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from tasks.domains.protocol import Evaluation
from tasks.domains.sums import checks, data, frontier, notation
from tasks.domains.sums.config import Config
from tasks.engine import gate
from tasks.engine.config import PromoteParams
from tasks.engine.records import Evaluated
from tasks.steps.promote import decide

CFG = Config(round_problems=100)


@pytest.mark.parametrize("length", [1, 2, 5, 12, 18, 19, 25, 40])
def test_the_format_round_trips_at_any_length(length: int) -> None:
    rng = np.random.default_rng(length)
    pairs = data.draw(rng, length, 50)
    assert len(pairs) == 50 and all(max(len(str(a)), len(str(b))) == length for a, b in pairs)
    for a, b in pairs:
        width = notation.answer_width(a, b)
        text = notation.answer_text(a + b, width)
        assert len(text) == length + 1 and notation.read_answer(text, width) == a + b
        assert notation.prompt(a, b) == f"{str(a)[::-1]}+{str(b)[::-1]}="
        assert notation.decode(notation.encode(notation.prompt(a, b) + text)) == (
            notation.prompt(a, b) + text
        )
    assert notation.prompt(123, 45) + notation.answer_text(168, 4) == "321+54=8610"
    assert notation.read_answer("861", 4) is None and notation.read_answer("86a0", 4) is None


def test_eval_and_training_partitions_never_meet() -> None:
    """Past 1 digit; 1-digit sums are scored on all 100 (see the next test)."""
    prepared = data.prepare(Config(seed_per_length=200, eval_per_length=30, eval_digits=6), 0)
    assert set(prepared.eval["length"].unique()) == set(range(1, 7))
    longer = prepared.eval.filter(pl.col("length") > 1)
    assert longer.height == 5 * 30
    assert not set(prepared.seed["problem"]) & set(longer["problem"])
    assert all(notation.held_out(p) for p in longer["problem"])
    fresh = data.round_problems(CFG, 2, 1, 7)
    assert not any(notation.held_out(p) for p in fresh["problem"])
    assert fresh.height == 100 and set(fresh["length"]) == {2}


def test_every_one_digit_sum_is_scored_so_forgetting_one_is_vetoed() -> None:
    """The c11 failure of docs/sums.md: a champion got 1 of the 7 held-out 1-digit sums wrong,
    too few rows for the veto. Scored on all 100, a 14-point drop at 1 digit is refused."""
    prepared = data.prepare(Config(seed_per_length=200, eval_per_length=30, eval_digits=3), 0)
    one = prepared.eval.filter(pl.col("length") == 1)
    assert sorted(one["problem"]) == sorted(f"{a}+{b}" for a in range(10) for b in range(10))
    for problem, output in one.select("problem", "output").rows():
        assert notation.read_answer(output, 2) == sum(map(int, problem.split("+")))
    only_held = {"eval_every_problem_up_to": 0}
    held = data.prepare(
        Config(seed_per_length=200, eval_per_length=30, eval_digits=3, **only_held), 0
    )
    assert held.eval.filter(pl.col("length") == 1).height < 20  # held-out ones only
    assert held.seed["problem"].to_list() == prepared.seed["problem"].to_list()  # seed unchanged
    with pytest.raises(ValueError, match="eval_every_problem_up_to: length 3"):
        data.every_problem(3)
    champion = evaluation({1: [1.0] * 100, 2: [1.0] * 100, 5: [0.0] * 100})
    forgot = evaluation({1: [1.0] * 86 + [0.0] * 14, 2: [1.0] * 100, 5: [1.0] * 40 + [0.0] * 60})
    rules = PromoteParams()
    comparison = gate.compare(forgot.scores, champion.scores, rules.confidence)  # type: ignore[arg-type]
    assert comparison.overall.low > 0  # better overall
    decision = decide(record(forgot), record(champion), rules, None, comparison)
    assert not decision.promoted and decision.reason.startswith("slice veto: slice 1")


def rows(answers: list[tuple[str, str]], votes: list[int], cfg: Config) -> pl.DataFrame:
    """Candidate rows for (problem, output) pairs, in the domain's schema."""
    n = len(answers)
    problems = [p for p, _ in answers]
    frame = data.problems([tuple(map(int, p.split("+"))) for p in problems], problems)  # type: ignore[misc]
    return frame.with_columns(
        pl.Series("row_id", [f"r{i}" for i in range(n)]),
        pl.lit(1, pl.Int64()).alias("cycle"),
        pl.lit("c0:x").alias("generator"),
        pl.lit("sampled").alias("method"),
        pl.lit(0.5).alias("confidence"),
        pl.lit(4, pl.Int64()).alias("frontier"),
        pl.Series("sample", range(n), pl.Int64()),
        pl.Series("output", [o for _, o in answers]),
        pl.Series("votes", votes, pl.Int64()),
        pl.lit(cfg.checker).alias("checker"),
    ).select(list(data.schema()))


def test_the_executor_keeps_an_answer_only_when_it_equals_the_sum() -> None:
    batch = rows(
        [("123+45", "8610"), ("123+45", "9610"), ("123+45", "861"), ("99999+1", "000001")],
        [1, 1, 1, 1],
        CFG,
    )
    judged = checks.check_columns(batch, CFG)
    assert judged["check_sum_ok"].to_list() == [True, False, None, True]
    assert judged["check_parsed"].to_list() == [True, True, False, True]
    assert judged["check_vote_ok"].null_count() == 4  # the vote plays no part
    assert checks.executor_keeps("123+45", "8610", 30)
    assert not checks.executor_keeps("123+45", "8611", 30)
    assert not checks.executor_keeps("not a sum", "8610", 30)


def test_the_unchecked_variant_keeps_what_the_samples_agree_on_right_or_wrong() -> None:
    vote = Config(checker="vote", samples=5, vote_share=0.8)
    batch = rows([("123+45", "9610"), ("123+45", "8610"), ("7+8", "51")], [4, 1, 5], vote)
    judged = checks.check_columns(batch, vote)
    assert judged["check_vote_ok"].to_list() == [True, False, True]  # 4 of 5 agree: kept, wrong
    assert judged["check_sum_ok"].null_count() == 3  # the executor is never consulted
    reasons = {e.reason for e in checks.suite(vote) if e.filter}
    assert reasons == {checks.MALFORMED, checks.NO_CONSENSUS}


def kept(cycle: int, length: int, problems: int, greedy: int | None = None) -> pl.DataFrame:
    """Training rows of one round: `problems` problems kept, two rows each (a sampled one, and
    the greedy one for the first `greedy` problems; all of them when None)."""
    greedy = problems if greedy is None else greedy
    return pl.DataFrame(
        {
            "cycle": [cycle] * 2 * problems,
            "length": [length] * 2 * problems,
            "problem_id": [f"c{cycle}p{i // 2}" for i in range(2 * problems)],
            "sample": [
                0 if i % 2 == 0 and i // 2 < greedy else 1 + i % 2 for i in range(2 * problems)
            ],
        }
    )


SEED = pl.DataFrame({"cycle": [0], "length": [4], "problem_id": ["s0"], "sample": [0]})
KEPT_ONLY = Config(round_problems=100, frontier={"min_greedy_share": 0.0})


def test_the_frontier_advances_on_enough_kept_problems_and_retries_otherwise() -> None:
    cfg = KEPT_ONLY
    assert frontier.current(SEED, 1, cfg) == 4  # the first round proposes 5 digits
    trainset = pl.concat([SEED, kept(1, 5, 9)])  # 9 of 100: below 10%, retry
    assert frontier.current(trainset, 2, cfg) == 4
    trainset = pl.concat([trainset, kept(2, 5, 10)])  # 10 of 100: advance
    assert frontier.current(trainset, 3, cfg) == 5
    assert frontier.current(trainset, 4, cfg) == 5  # round 3 kept nothing (rejected): retry
    rounds = frontier.history(pl.concat([trainset, kept(4, 6, 50)]), 5, cfg)
    assert [(r.length, r.kept, r.advanced) for r in rounds] == [
        (5, 9, False), (5, 10, True), (6, 0, False), (6, 50, True),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="expected 6"):
        frontier.history(pl.concat([trainset, kept(3, 7, 5)]), 4, cfg)
    rule = Config(round_problems=100, frontier={"min_kept_share": 0.5, "min_greedy_share": 0})
    assert frontier.current(pl.concat([SEED, kept(1, 5, 10)]), 2, rule) == 4


def test_the_frontier_waits_until_the_champion_answers_the_length_greedily() -> None:
    """The default rule: many kept problems are not enough while the champion's greedy answer
    is right on fewer than half of the round's problems (it found them by sampling)."""
    assert CFG.frontier.min_greedy_share == 0.5
    trainset = pl.concat([SEED, kept(1, 5, 60, greedy=30)])  # 60% kept, greedy 30%: retry
    assert frontier.current(trainset, 2, CFG) == 4
    trainset = pl.concat([trainset, kept(2, 5, 80, greedy=50)])  # greedy 50%: advance
    assert frontier.current(trainset, 3, CFG) == 5
    rounds = frontier.history(trainset, 3, CFG)
    assert [(r.kept, r.greedy, r.advanced) for r in rounds] == [(60, 30, False), (80, 50, True)]
    assert frontier.advances(10, 10, CFG) is False  # greedy right on 10%: not yet good at 5
    assert frontier.advances(100, 100, CFG) is True


def test_the_frontier_is_recorded_by_validation() -> None:
    batch = rows([("12345+6", "153421")] * 2, [2, 2], CFG)
    record = checks.frontier_record(batch.with_columns(pl.Series("problem_id", ["a", "b"])), CFG)
    assert record.passed and record.rule == "frontier_rule"
    assert record.observed == 0.02 and record.bound == 0.1
    assert "frontier 4, round at 5 digits: 2 of 100" in record.detail and "retried" in record.detail
    assert "greedy answer 1 (0.010; needs 0.5)" in record.detail  # sample 0 of problem "a"
    many = rows([("12345+6", "153421")] * 60, [1] * 60, CFG).with_columns(
        pl.Series("problem_id", [f"p{i}" for i in range(60)]), sample=pl.lit(0, pl.Int64())
    )
    assert "so the frontier moves to 5" in checks.frontier_record(many, CFG).detail


def test_left_padded_decoding_equals_decoding_each_prompt_alone() -> None:
    from tasks.domains.sums import decoding
    from tasks.domains.sums.network import decode

    torch.manual_seed(0)
    net = decoding.build(Config(train={"width": 32, "layers": 2, "heads": 2})).nets()[0]
    for p in net.parameters():  # large weights: every position's output differs
        torch.nn.init.normal_(p, std=0.5)
    prompts = [notation.encode(notation.prompt(a, b)) for a, b in [(123, 45), (9, 87), (5, 6)]]
    together, probs = decode(net, decoding.left_padded(prompts), 4, 0.0)
    for i, ids in enumerate(prompts):
        alone, alone_probs = decode(net, torch.tensor([ids]), 4, 0.0)
        assert together[i].tolist() == alone[0].tolist()
        assert probs[i].item() == pytest.approx(alone_probs[0].item(), abs=1e-5)


def evaluation(per_length: dict[int, list[float]]) -> Evaluation:
    scores = [s for n in sorted(per_length) for s in per_length[n]]
    slices = [str(n) for n in sorted(per_length) for _ in per_length[n]]
    return Evaluation.from_scores(range(len(scores)), scores, slices)


def record(result: Evaluation) -> Evaluated:
    return Evaluated(
        model_id="m", metric_name="exact_match", metric=result.metric, slices=result.slices
    )


def test_forgetting_a_mastered_length_is_vetoed_even_when_the_frontier_gains() -> None:
    """The unchecked variant's failure (issue 13's prototype: 4 digits fell from 100% to 82%
    while it learned wrong answers past the frontier): the per-length veto refuses it."""
    champion = evaluation({n: [1.0] * 100 for n in range(1, 5)} | {5: [0.0] * 100})
    forgot = evaluation(
        {n: [1.0] * 100 for n in range(1, 4)}
        | {4: [1.0] * 82 + [0.0] * 18}
        | {5: [1.0] * 60 + [0.0] * 40}
    )
    rules = PromoteParams()
    comparison = gate.compare(forgot.scores, champion.scores, rules.confidence)  # type: ignore[arg-type]
    assert comparison.overall.low > 0  # better overall, significantly
    decision = decide(record(forgot), record(champion), rules, None, comparison)
    assert not decision.promoted and decision.reason.startswith("slice veto: slice 4")
    learned = evaluation({n: [1.0] * 100 for n in range(1, 5)} | {5: [1.0] * 80 + [0.0] * 20})
    comparison = gate.compare(learned.scores, champion.scores, rules.confidence)  # type: ignore[arg-type]
    assert decide(record(learned), record(champion), rules, None, comparison).promoted


def test_a_mastered_length_may_not_slip_below_the_bar_in_a_promoted_champion() -> None:
    """A length at 0.92 that slips to 0.88 is no significant fall, so the veto lets it pass;
    sums' slice floor (0.9) refuses it. A length below the bar may still move freely."""
    from tasks.domains.sums import DOMAIN

    champion = evaluation(
        {n: [1.0] * 100 for n in range(1, 5)}
        | {5: [1.0] * 92 + [0.0] * 8}
        | {6: [1.0] * 50 + [0.0] * 50}
    )
    slipped = evaluation(
        {n: [1.0] * 100 for n in range(1, 5)}
        | {5: [1.0] * 88 + [0.0] * 12}
        | {6: [1.0] * 85 + [0.0] * 15}
    )
    rules = PromoteParams()
    comparison = gate.compare(slipped.scores, champion.scores, rules.confidence)  # type: ignore[arg-type]
    assert decide(record(slipped), record(champion), rules, None, comparison).promoted
    decision = decide(
        record(slipped), record(champion), rules, None, comparison, DOMAIN.slice_floor
    )
    assert DOMAIN.slice_floor == 0.9
    assert not decision.promoted
    assert decision.reason.startswith("slice floor: slice 5 at 0.880, below 0.9")
    assert decision.evidence is not None and decision.evidence["below_floor"] == ["5"]
    below = evaluation(
        {n: [1.0] * 100 for n in range(1, 5)} | {5: [1.0] * 50 + [0.0] * 50} | {6: [0.0] * 100}
    )
    moved = evaluation(
        {n: [1.0] * 100 for n in range(1, 5)}
        | {5: [1.0] * 45 + [0.0] * 55}
        | {6: [1.0] * 60 + [0.0] * 40}
    )  # 5, never mastered, falls from 0.50 to 0.45: no floor applies below the bar
    comparison = gate.compare(moved.scores, below.scores, rules.confidence)  # type: ignore[arg-type]
    assert decide(record(moved), record(below), rules, None, comparison, 0.9).promoted


def test_every_model_of_the_ensemble_answers_and_votes() -> None:
    """The unchecked variant with `models: 2`: both networks (different initial weights) give
    a greedy and a sampled answer per problem, and a row's votes count all four answers."""
    from tasks.domains.sums import DOMAIN

    cfg = Config(
        checker="vote", models=2, samples=2, round_problems=10, seed_digits=2,
        train={"width": 16, "layers": 1, "heads": 2},
    )  # fmt: skip
    torch.manual_seed(0)
    network = DOMAIN.build_network(cfg)
    first, second = network.nets()
    assert not torch.equal(first.tokens.weight, second.tokens.weight)
    seed = data.prepare(cfg.model_copy(update={"seed_per_length": 5, "eval_digits": 2}), 0).seed
    rows = DOMAIN.generate(network, pl.DataFrame(), seed, 1, "c0:x", cfg, 3)
    assert rows.height == 10 * 4 and set(rows["sample"]) == {0, 1, 2, 3}
    assert rows.filter(pl.col("method") == "greedy")["sample"].unique().sort().to_list() == [0, 2]
    assert set(rows["length"]) == {3} and set(rows["checker"]) == {"vote"}
    counted = rows.group_by("problem_id", "output").agg(pl.len().alias("n"))
    joined = rows.join(counted, on=["problem_id", "output"])
    assert (joined["votes"] == joined["n"]).all() and rows["votes"].max() <= 4


def test_rounds_train_at_their_own_learning_rate() -> None:
    """Cycle 0 (scratch) uses `lr` and `warmup`; a warm-started round `round_lr` and
    `round_warmup`, carried by its batches and applied by the module before each step."""
    from tasks.domains.sums import DOMAIN
    from tasks.domains.sums.training import SumsLM, loader, lr_factor
    from tasks.engine import training
    from tasks.engine.config import TrainerParams

    cfg = Config(
        seed_digits=2, seed_per_length=30, train={
            "width": 16, "layers": 1, "heads": 2, "batch_size": 8, "seed_steps": 5, "steps": 4,
            "lr": 3e-3, "warmup": 3, "round_lr": 5e-4, "round_warmup": 2,
            "restart_steps": 4, "restart_lr": 1e-3,
        },
    )  # fmt: skip
    seed = data.prepare(cfg.model_copy(update={"eval_digits": 2}), 0).seed
    batches = list(loader(seed, cfg, 0))
    rates = [float(b[2]) for b in batches]
    assert rates[:5] == pytest.approx([3e-3 * lr_factor(s, 3, 5) for s in range(5)])
    assert rates[2] == pytest.approx(3e-3)  # the peak after 3 warm-up steps
    # then the warm restart: warmed up again to restart_lr, decayed over restart_steps
    assert rates[5:] == pytest.approx([1e-3 * lr_factor(s, 3, 4) for s in range(4)])
    assert rates[5] < rates[6] < rates[7] == pytest.approx(1e-3)
    assert all(set(b[1][:, 1].tolist()) == {2, 3} for b in batches[5:])  # both seed lengths
    round_rows = seed.head(4).with_columns(cycle=pl.lit(1, pl.Int64()))
    trainset = pl.concat([seed, round_rows])
    rates = [float(b[2]) for b in loader(trainset, cfg, 0)]
    assert rates == pytest.approx([5e-4 * lr_factor(s, 2, 4) for s in range(4)])
    assert max(rates) == pytest.approx(5e-4)
    training.prepare(TrainerParams(), 0)
    module = SumsLM(DOMAIN.build_network(cfg), cfg)
    training.fit(module, loader(trainset, cfg, 0), 4, TrainerParams())
    [optimizer] = module.trainer.optimizers
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([rates[-1]] * 2)


@pytest.mark.parametrize(
    ("power", "expected"), [(0.0, {1: 20, 2: 20, 3: 20}), (1.0, {1: 10, 2: 20, 3: 30})]
)
def test_older_rows_are_rehearsed_in_proportion_to_length_weight(
    power: float, expected: dict[int, int]
) -> None:
    """A round's batch draws its older rows per length in proportion to length ** length_weight
    (0: balanced), read back from the answers' widths (a sum of n digits answers n + 1)."""
    from tasks.domains.sums.training import loader

    cfg = Config(
        seed_digits=3, seed_per_length=30, train={
            "width": 16, "layers": 1, "heads": 2, "batch_size": 60, "steps": 2,
            "newest_share": 0.0, "length_weight": power,
        },
    )  # fmt: skip
    seed = data.prepare(cfg.model_copy(update={"eval_digits": 3}), 0).seed
    newest = seed.head(4).with_columns(
        cycle=pl.lit(1, pl.Int64()), problem_id=pl.lit("r") + pl.col("problem_id")
    )
    for _, spans, *_ in loader(pl.concat([seed, newest]), cfg, 0):
        widths, counts = np.unique(spans[:, 1].numpy(), return_counts=True)
        assert dict(zip((widths - 1).tolist(), counts.tolist(), strict=True)) == expected


def test_the_loss_per_group_of_lengths_equals_the_loss_over_the_padded_batch() -> None:
    """Training cuts each batch into groups of similar length, each padded to its own longest
    row; the loss and its gradients are the padded batch's mean over answer characters."""
    from torch.nn import functional as F

    from tasks.domains.sums import decoding
    from tasks.domains.sums.training import IGNORE, answer_loss, encode_rows

    cfg = Config(seed_digits=9, seed_per_length=5, train={"width": 32, "layers": 2, "heads": 2})
    rows = data.prepare(cfg.model_copy(update={"eval_digits": 9}), 0).seed
    tokens, spans = encode_rows(rows.sample(fraction=1.0, shuffle=True, seed=1), 9)
    torch.manual_seed(0)
    net = decoding.build(cfg).nets()[0]

    logits = net(tokens[:, :-1])  # the whole batch padded to its longest row, by hand
    targets = tokens[:, 1:].clone()
    position = torch.arange(1, tokens.shape[1])[None, :]
    targets[(position < spans[:, :1]) | (position >= spans.sum(dim=1)[:, None])] = IGNORE
    padded = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    expected = torch.autograd.grad(padded, list(net.parameters()))

    grouped = answer_loss(net, tokens, spans)
    got = torch.autograd.grad(grouped, list(net.parameters()))
    assert int(spans[:, 1].min()) == 2 and int(spans[:, 1].max()) == 10  # lengths 1-9 mixed
    assert grouped.item() == pytest.approx(padded.item(), rel=1e-5)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("round_fit", [True, False])
def test_a_rounds_steps_clip_the_gradient_norm_and_the_seed_fits_do_not(round_fit: bool) -> None:
    """The norm of the gradients a round's optimiser steps with is at most `round_grad_clip`;
    the seed fit's are as computed (far above 0.01 for a fresh network)."""
    from tasks.domains.sums import DOMAIN
    from tasks.domains.sums.training import SumsLM, loader
    from tasks.engine import training
    from tasks.engine.config import TrainerParams

    cfg = Config(
        seed_digits=2, seed_per_length=30, train={
            "width": 16, "layers": 1, "heads": 2, "batch_size": 8, "seed_steps": 3, "steps": 3,
            "restart_steps": 0, "round_grad_clip": 0.01,
        },
    )  # fmt: skip
    rows = data.prepare(cfg.model_copy(update={"eval_digits": 2}), 0).seed
    if round_fit:  # a round's kept rows: the training set is no longer the seed alone
        rows = pl.concat([rows, rows.head(4).with_columns(cycle=pl.lit(1, pl.Int64()))])
    training.prepare(TrainerParams(), 0)
    network = DOMAIN.build_network(cfg)
    module = SumsLM(network, cfg)
    norms: list[float] = []
    build = module.configure_optimizers

    def watched() -> torch.optim.Optimizer:
        optimizer = build()  # the step runs Lightning's closure (backward, clip) first
        optimizer.register_step_post_hook(lambda *_: norms.append(grad_norm(network)))
        return optimizer

    module.configure_optimizers = watched  # type: ignore[method-assign]
    training.fit(module, loader(rows, cfg, 0), 3, TrainerParams())
    assert len(norms) == 3
    if round_fit:
        assert max(norms) <= 0.01 * 1.001
    else:
        assert min(norms) > 0.01


def grad_norm(network: torch.nn.Module) -> float:
    """The norm of all parameters' gradients together."""
    grads = [p.grad.norm() for p in network.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm())
