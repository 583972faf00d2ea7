"""Populations: K runs trained as one stacked model give each run's own numbers, bit for bit on a CPU."""

from __future__ import annotations

import math

import pytest
import torch

from infogan_core import CheckpointError, ConfigError, DivergedError, TrainConfig, train
from infogan_core.population import MEMBER_FIELDS, check_members
from infogan_core.training import Checkpoints, train_population

from helpers import TINY_DIGITS, TINY_RING

pytestmark = pytest.mark.usefixtures("core_env")

# bit-exactness holds when each member's tensors fill whole SIMD vectors (population.py says why): batches
# that are multiples of 32 and convolution channels that are multiples of 16 (conv widths 0.25, 0.5, 1)
RING = TrainConfig(**{**TINY_RING, "batch_size": 32}, report_every=25, eval_every=50, steps=100)
DIGITS = TrainConfig(
    **{**TINY_DIGITS, "batch_size": 32, "g_width": 0.25, "d_width": 0.25}, report_every=25, eval_every=50, steps=100
)


def _members(base: TrainConfig, k: int = 3) -> list[TrainConfig]:
    """k configurations that differ in every knob a population lets differ."""
    return [
        base.replace(
            seed=s,
            lr_g=1e-3 * (1 + s),
            lr_d=2e-4 * (1 + s),
            betas=(0.5, 0.99 + 0.001 * s),
            lambda_cat=1.0 + 0.5 * s,
            lambda_cont=0.1 * (1 + s),
            clip_value=1.0 + s,
            q_min_std=0.01 * s,
            cont_prior=("uniform", "gaussian", "gaussian_matched")[s % 3],
            noise_prior=("gaussian", "uniform")[s % 2],
            info_entropy=s % 2 == 1,
        )
        for s in range(k)
    ]


def assert_same_run(member, single) -> None:
    """The member's history (every report, every metric but timing), final metrics and networks are the single run's."""

    def untimed(rows):
        return [{k: v for k, v in row.items() if k != "time/steps_per_s"} for row in rows]

    assert untimed(member.history) == untimed(single.history)
    assert untimed([member.metrics]) == untimed([single.metrics])
    a, b = member.model.state_dict(), single.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # BN statistics included


@pytest.mark.slow
@pytest.mark.parametrize("base", [RING, DIGITS], ids=["mlp-ring8", "conv-digits"])
def test_each_member_is_its_single_run_bit_for_bit_after_100_steps(base: TrainConfig) -> None:
    cfgs = _members(base.replace(cont_codes=2, q_std="learned", clip="norm"))
    for member, cfg in zip(train_population(cfgs), cfgs, strict=True):
        assert_same_run(member, train(cfg))


@pytest.mark.parametrize("base", [RING, DIGITS], ids=["mlp-ring8", "conv-digits"])
def test_members_that_train_alike_are_updated_together_and_stay_exact(base: TrainConfig) -> None:
    # seeds alone differ: one fused Adam call on whole stacked tensors where each member's slice fills whole
    # vectors, member by member where it does not (a 1-element bias): the vector lanes of a single run
    cfgs = [base.replace(seed=s, steps=40, report_every=20, eval_every=40) for s in range(4)]
    for member, cfg in zip(train_population(cfgs), cfgs, strict=True):
        assert_same_run(member, train(cfg))


def test_members_stay_exact_on_two_threads() -> None:
    # a trial with `resources: {cpus: 2}` trains on two threads. Eight members of a 128-unit mlp make tensors
    # past torch's parallel grain (32,768 values), so a population's kernels split over the threads where a
    # single run's may not; two threads give other numbers than one, and still each member's are its single run's
    base = TrainConfig(**{**TINY_RING, "batch_size": 64, "g_width": 1.0, "d_width": 1.0}, clip="norm")
    cfgs = [base.replace(seed=s, steps=30, report_every=15, eval_every=30) for s in range(8)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        members, singles = train_population(cfgs), {k: train(cfgs[k]) for k in (0, 7)}
        torch.set_num_threads(1)
        one_thread = train(cfgs[0])
    finally:
        torch.set_num_threads(threads)
    losses = [[row["loss/d"] for row in run.history] for run in (one_thread, singles[0])]
    assert losses[0] != losses[1], "two threads computed what one does: this test would cover nothing"
    for k, single in singles.items():
        assert_same_run(members[k], single)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_optimizer_is_torchs_own_for_each_member(optimizer: str) -> None:
    # one update of the (K, P) buffer is K of torch.optim's updates, each member at its own rate and betas
    # (momentum), the D trunk's extra updates (a part of the group) counted apart for the bias corrections;
    # not bit for bit: torch fuses some of its arithmetic (lerp, addcdiv)
    from infogan_core.population import MemberGroup

    cfgs = [
        RING.replace(seed=k, optimizer=optimizer, betas=(0.5 + 0.1 * k, 0.99 + 0.003 * k), momentum=0.5 + 0.2 * k)
        for k in range(3)
    ]
    lrs = [1e-3, 3e-3, 1e-2]
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 5, 4), (3, 7), (3, 2, 3, 2)]
    params = [torch.nn.Parameter(torch.randn(*s, generator=gen)) for s in shapes]
    singles = [[torch.nn.Parameter(p[k].detach().clone()) for p in params] for k in range(3)]
    group = MemberGroup(params, cfgs, lrs, torch.ones(3, dtype=torch.bool))
    if optimizer == "adam":
        torch_opts = [torch.optim.Adam(singles[k], lr=lrs[k], betas=cfgs[k].betas) for k in range(3)]
    else:
        torch_opts = [torch.optim.SGD(singles[k], lr=lrs[k], momentum=cfgs[k].momentum) for k in range(3)]
    part = params[:2]  # a part stepped alone too, as D's trunk in an unfrozen G step
    for step in range(12):
        group.zero_grad()
        chosen = part if step % 3 == 2 else params
        for p, single in zip(params, zip(*singles, strict=True), strict=True):
            g = torch.randn(p.shape, generator=gen)
            p.grad.copy_(g)
            for k, q in enumerate(single):
                q.grad = g[k].clone() if any(p is c for c in chosen) else None
        group.step(None if chosen is params else chosen)
        for opt in torch_opts:
            opt.step()
    for p, single in zip(params, zip(*singles, strict=True), strict=True):
        for k, q in enumerate(single):
            torch.testing.assert_close(p[k], q.detach(), rtol=1e-5, atol=1e-6)


def test_a_stopped_member_is_not_updated() -> None:
    from infogan_core.population import MemberGroup

    params = [torch.nn.Parameter(torch.ones(2, 3))]
    active = torch.tensor([True, False])
    group = MemberGroup(params, [RING, RING.replace(seed=1)], [0.1, 0.1], active)
    params[0].grad.fill_(1.0)
    group.step()
    assert not torch.equal(params[0][0], torch.ones(3)) and torch.equal(params[0][1], torch.ones(3))


def _step_ops(cfgs: list[TrainConfig]) -> int:
    """Top-level aten operations of training steps 2-4 of a population, counted by torch's profiler."""
    from torch.profiler import ProfilerActivity, profile

    from infogan_core import step

    run = step.build_run(cfgs)
    run.step_t.fill_(1)
    step.train_step(run)  # the first step builds the optimizer's segments
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for number in (2, 3, 4):
            run.step_t.fill_(number)
            step.train_step(run)
    ops = [e for e in prof.events() if e.name.startswith("aten::")]
    return sum(1 for e in ops if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))


@pytest.mark.parametrize(
    "knobs", [{}, {"freeze_d_in_g_step": False, "clip": "norm", "d_steps": 2}], ids=["default", "knobs"]
)
def test_a_steps_operations_do_not_grow_with_the_population(knobs: dict) -> None:
    # every draw, update, norm and guard of K members is one operation on (K, ...) tensors: 2 members and 16
    # take the same operations (and so, on a GPU, the same kernel launches), and one member a copy or two
    # fewer (`contiguous` on tensors that a single run already holds in that layout). Members of mixed priors
    # draw uniform and gaussian noise and pick each member's: a few operations more, however many members
    base = DIGITS.replace(**knobs)
    alike = [base.replace(seed=s) for s in range(16)]
    assert _step_ops(alike) == _step_ops(alike[:2]) <= _step_ops(alike[:1]) * 1.01
    mixed = [base.replace(seed=s, noise_prior=("uniform", "gaussian")[s % 2]) for s in range(16)]
    assert _step_ops(mixed) == _step_ops(mixed[:2]) <= _step_ops(mixed[1:2]) * 1.1


KNOBS = {
    "g_step": {"q_update": "g_step"},
    "unfrozen": {"freeze_d_in_g_step": False},
    "unfrozen-info-sgd": {"freeze_d_in_g_step": False, "g_step_trunk": "info", "optimizer": "sgd", "clip": "norm"},
    "q-bn-without-d-bn": {"d_batchnorm": "none", "q_batchnorm": True},
    "isolated-no-q-bn": {"encoder": "isolated", "q_batchnorm": False},
    "isolated-joint": {"encoder": "isolated", "d_batchnorm": "joint"},
    "learned-prior": {"learn_cat_prior": True},
    "straight-through": {"learn_cat_prior": True, "prior_grad": "straight_through"},
    "prior-own-rate": {"learn_cat_prior": True, "lr_prior": 0.02, "clip": "norm", "clip_value": 0.5},
    "sgd-probs-value": {"optimizer": "sgd", "loss_space": "probs", "clip": "value"},
    "d-steps": {"d_steps": 2, "g_loss": "saturating"},
}


@pytest.mark.slow
@pytest.mark.parametrize("knobs", KNOBS.values(), ids=KNOBS.keys())
def test_members_stay_exact_whatever_the_shared_knobs(knobs: dict) -> None:
    cfgs = _members(DIGITS.replace(steps=30, report_every=10, eval_every=30, **knobs), k=2)
    for member, cfg in zip(train_population(cfgs), cfgs, strict=True):
        assert_same_run(member, train(cfg))


@pytest.mark.parametrize("base", [RING.replace(cont_codes=2), DIGITS], ids=["mlp-ring8-cont", "conv-digits"])
def test_members_with_and_without_info_entropy_are_their_single_runs(base: TrainConfig) -> None:
    # info_entropy may differ within a population (a per-member constant); each member is its single run, and
    # that run is the one with the other setting, bit for bit
    cfgs = [base.replace(seed=s, info_entropy=s != 1, steps=30, report_every=10, eval_every=30) for s in range(3)]
    for member, cfg in zip(train_population(cfgs), cfgs, strict=True):
        single = train(cfg)
        assert_same_run(member, single)
        assert_same_run(single, train(cfg.replace(info_entropy=not cfg.info_entropy)))


def test_a_diverging_member_stops_alone() -> None:
    unstable = dict(optimizer="sgd", lr_g=0.1, lr_d=0.1, loss_space="probs", d_batchnorm="none", g_batchnorm=False)
    base = RING.replace(steps=120, report_every=20, eval_every=120, **unstable)
    cfgs = [base.replace(seed=0, clip="none"), base.replace(seed=0, clip="none", lr_g=1e-4, lr_d=1e-4)]
    # clip differs: not a member field, so the stable member gets a tiny rate instead
    diverged, stable = train_population(cfgs)
    assert isinstance(diverged, DivergedError) and diverged.step < 120 and diverged.grad_peak > 100
    alone = train(cfgs[1])
    assert stable.steps_run == 120 and all(math.isfinite(v) for v in stable.metrics.values())
    assert_same_run(stable, alone)  # the diverging member's NaNs never reached it
    with pytest.raises(DivergedError) as single:
        train(cfgs[0])
    assert single.value.step == diverged.step  # and it diverged where its single run does


def test_a_member_stopped_by_its_report_stops_alone() -> None:
    cfgs = [RING.replace(seed=s, steps=60, report_every=10, eval_every=30) for s in range(3)]
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def report(step: int, rows: dict[int, dict]) -> list[int]:
        for member in rows:
            seen[member].append(step)
        return [1] if step >= 20 and 1 in rows else []

    results = train_population(cfgs, report=report)
    assert seen == {0: [10, 20, 30, 40, 50, 60], 1: [10, 20], 2: [10, 20, 30, 40, 50, 60]}
    assert results[1].stopped_early and results[1].steps_run == 20 and not results[0].stopped_early
    assert_same_run(results[2], train(cfgs[2]))
    # the stopped member is the network it was at its stop: the others' later forwards (BN running
    # statistics) leave it alone, as a single run stopped at step 20 is left alone
    stopped_alone = train(cfgs[1], report=lambda step, metrics: step >= 20)
    assert any("running_mean" in name for name in stopped_alone.model.state_dict())
    assert_same_run(results[1], stopped_alone)


def test_members_must_share_every_shape_knob() -> None:
    base = TrainConfig(**TINY_RING)
    check_members([base, base.replace(seed=1, lr_g=0.01, cont_prior="gaussian")])
    with pytest.raises(ConfigError, match=r"`noise_dim` must be the same for every member .*member 1 has 8"):
        check_members([base, base.replace(noise_dim=8)])
    with pytest.raises(ConfigError, match=r"`lambda_cat>0` must be the same"):
        check_members([base, base.replace(lambda_cat=0.0)])  # a zero lambda detaches Q's input: another graph
    assert "seed" in MEMBER_FIELDS and "batch_size" not in MEMBER_FIELDS


# --- checkpoints: a run killed and resumed gives the numbers of a run never stopped ------------------


RESUMED = {
    "mlp-ring8": RING,
    "conv-digits": DIGITS,
    # the G step's trunk optimizer has moments of its own, which the checkpoint must carry
    "unfrozen-info": RING.replace(freeze_d_in_g_step=False, g_step_trunk="info"),
    "unfrozen-all": DIGITS.replace(freeze_d_in_g_step=False, clip="norm"),
    # a prior with a rate of its own: its optimizer's moments too
    "prior-own-rate": RING.replace(learn_cat_prior=True, lr_prior=0.02),
}


@pytest.mark.parametrize("base", RESUMED.values(), ids=RESUMED.keys())
def test_a_resumed_run_equals_an_uninterrupted_one(base: TrainConfig, tmp_path) -> None:
    cfgs = _members(base.replace(steps=80, report_every=20, eval_every=40), k=2)
    saves: list[int] = []
    checkpoints = Checkpoints(tmp_path / "ckpt", every=30, on_save=saves.append)
    # the first attempt dies after its step-30 checkpoint (its report stops it at step 40, as a kill would)
    first = train_population(cfgs, report=lambda step, rows: list(rows) if step >= 40 else [], checkpoints=checkpoints)
    assert saves == [30] and all(r.steps_run == 40 for r in first)
    resumed = train_population(cfgs, checkpoints=checkpoints)  # finds state.pt: resumes at step 31
    assert saves == [30, 60]
    for member, cfg in zip(resumed, cfgs, strict=True):
        assert_same_run(member, train(cfg))  # history from before and after the break included


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "not a training state"])
def test_a_damaged_checkpoint_is_refused_as_such(tmp_path, damage: str) -> None:
    cfg = RING.replace(steps=40, report_every=10, eval_every=40)
    checkpoints = Checkpoints(tmp_path, every=10)  # saved at 10, then stopped at 20 as a kill would
    train_population([cfg], report=lambda step, rows: list(rows) if step >= 20 else [], checkpoints=checkpoints)
    data = checkpoints.path.read_bytes()
    assert len(data) > 1000  # control: a whole state was saved
    damaged = {
        "empty": b"",
        "truncated": data[: len(data) // 2],  # as a full disk leaves a copy
        "garbage": bytes(range(256)) * 8,
        "not a training state": b"",
    }[damage]
    if damage == "not a training state":
        torch.save({"model": {}}, checkpoints.path)
    else:
        checkpoints.path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=r"the checkpoint .*state\.pt cannot be read \(\w+"):
        train_population([cfg], checkpoints=checkpoints)


def test_a_checkpoint_of_another_run_is_refused(tmp_path) -> None:
    checkpoints = Checkpoints(tmp_path, every=10)
    train(RING.replace(steps=20, report_every=10, eval_every=20), checkpoints=checkpoints)
    with pytest.raises(ConfigError, match="saved by another run"):
        train(RING.replace(steps=20, report_every=10, eval_every=20, seed=7), checkpoints=checkpoints)


def test_checkpoints_can_be_due_by_time(tmp_path) -> None:
    saves: list[int] = []
    cfg = RING.replace(steps=5, report_every=5, eval_every=5)
    every_step = Checkpoints(tmp_path / "t", every_s=0.0, on_save=saves.append)  # no step count: by the clock
    train_population([cfg], checkpoints=every_step)
    assert saves == [1, 2, 3, 4]  # never after the last step: a finished run needs no state
    hourly = Checkpoints(tmp_path / "h", every_s=3600.0, on_save=saves.append)
    train_population([cfg], checkpoints=hourly)
    assert saves == [1, 2, 3, 4] and not hourly.path.exists()


def test_the_exactness_condition_names_what_breaks_it() -> None:
    from infogan_core import inexact_population

    assert inexact_population(RING) is None and inexact_population(DIGITS) is None  # the configurations above
    assert inexact_population(RING.replace(batch_size=50)) == "batch_size 50 is not a multiple of 32"
    assert "channels [19, 38]" in inexact_population(DIGITS.replace(g_width=0.3))
