"""Reservation-time calibration mirrors Opacus; the ledger caps the PLD-composed spend."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import pytest
from privsynth.server.db import Database, DatasetRow, LedgerRow, utcnow
from privsynth.server.errors import ResourceExhausted
from privsynth.server.privacy import ledger
from privsynth.server.privacy.accounting import DpSgdPlan, JobCharge, compose_epsilon, plan_dp_sgd
from sqlalchemy import func, select

N, EPOCHS, EPS, DELTA = 60, 1, 1.0, 1e-6
DELTA_CAP = 1e-5  # the δ cap of the dataset _db makes: the accounting δ of its budgets


def _plan() -> object:
    return plan_dp_sgd(
        n_records=N, batch_size=64, epochs=EPOCHS, target_epsilon=EPS, target_delta=DELTA
    )


def _charge(steps: int | None = None) -> JobCharge:
    p = _plan()
    return JobCharge(
        epsilon=EPS,
        delta=DELTA,
        noise_multiplier=p.noise_multiplier,  # type: ignore[attr-defined]
        sample_rate=p.sample_rate,  # type: ignore[attr-defined]
        steps=p.steps if steps is None else steps,  # type: ignore[attr-defined]
    )


def test_plan_matches_what_make_private_with_epsilon_does() -> None:
    """σ, q and steps planned at reservation are those Opacus would use for the same run."""
    import torch
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    batch = max(1, min(64, N // 4))  # models.dp_train's choice
    loader = DataLoader(TensorDataset(torch.zeros(N, 2), torch.zeros(N)), batch_size=batch)
    model = torch.nn.Linear(2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, optimizer, dp_loader = PrivacyEngine(accountant="prv").make_private_with_epsilon(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            data_loader=loader,
            target_epsilon=EPS,
            target_delta=DELTA,
            epochs=EPOCHS,
            max_grad_norm=1.0,
            poisson_sampling=True,
        )
    plan = _plan()
    assert plan.noise_multiplier == optimizer.noise_multiplier  # type: ignore[attr-defined]
    assert plan.sample_rate == dp_loader.sample_rate  # type: ignore[attr-defined]
    assert plan.steps == EPOCHS * len(dp_loader)  # type: ignore[attr-defined]


def test_composition_is_tighter_than_summing_and_never_above_it() -> None:
    one, one_sum, one_delta = compose_epsilon([_charge()], delta=DELTA)
    assert one <= one_sum == EPS
    assert one == pytest.approx(EPS, abs=0.03)  # PLD agrees with the PRV calibration
    assert one_delta == DELTA
    three, three_sum, three_delta = compose_epsilon([_charge()] * 3, delta=DELTA_CAP)
    assert three_sum == 3 * EPS
    assert three_delta == pytest.approx(3 * DELTA)
    assert one < three < 0.6 * three_sum  # sub-linear: far below basic composition
    four, _, _ = compose_epsilon([_charge()] * 4, delta=DELTA_CAP)
    assert three < four
    # Stated at a larger accounting δ, the same job costs less (never more than its own ε).
    assert compose_epsilon([_charge()], delta=DELTA_CAP)[0] < one
    with pytest.raises(ValueError, match="accounting delta"):
        compose_epsilon([_charge()] * 3, delta=DELTA)  # the jobs' δ do not fit


def test_fewer_steps_cost_less_and_no_steps_cost_nothing() -> None:
    full, _, _ = compose_epsilon([_charge()], delta=DELTA)
    half, _, _ = compose_epsilon([JobCharge(0.7, DELTA, *_event(steps=2))], delta=DELTA)
    assert 0 < half < full
    nothing = JobCharge(0.0, 0.0, *_event(steps=0))
    assert compose_epsilon([nothing], delta=DELTA) == (0.0, 0.0, 0.0)


def _event(steps: int) -> tuple[float, float, int]:
    p = _plan()
    return p.noise_multiplier, p.sample_rate, steps  # type: ignore[attr-defined]


def test_entries_without_an_event_compose_as_generic_mechanisms() -> None:
    composed, plain, delta = compose_epsilon(
        [JobCharge(2.0, 1e-6), JobCharge(3.0, 1e-6)], delta=2e-6
    )
    assert plain == 5.0 and delta == pytest.approx(2e-6)
    assert 0 < composed <= plain
    # Generic (ε, δ) composition gains little: it must stay a valid, near-basic bound.
    assert composed > 4.0


def _db(tmp_path: Path, cap: float) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    with db.session() as s:
        s.add(
            DatasetRow(
                id="d1",
                display_name="d",
                created_at=utcnow(),
                record_count=N,
                labelled_count=0,
                user_count=0,
                privacy_unit="record",
                epsilon_cap=cap,
                delta=DELTA_CAP,
                shard_path="x",
                content_sha256="0" * 64,
                scrub_report={},
            )
        )
    return db


def _reserve(db: Database, job: str) -> None:
    with db.session() as s:
        ledger.reserve(
            s,
            "d1",
            job_id=job,
            epsilon=EPS,
            delta=DELTA,
            actor="t",
            plan=_plan(),  # type: ignore[arg-type]
        )


def test_cap_is_enforced_on_the_composed_spend(tmp_path: Path) -> None:
    three = compose_epsilon([_charge()] * 3, delta=DELTA_CAP)[0]
    four = compose_epsilon([_charge()] * 4, delta=DELTA_CAP)[0]
    cap = (three + four) / 2  # admits exactly three jobs; a plain sum would admit one
    db = _db(tmp_path, cap)
    for job in ("j1", "j2", "j3"):
        _reserve(db, job)
    with pytest.raises(ResourceExhausted) as exc:
        _reserve(db, "j4")
    assert exc.value.remaining == pytest.approx(cap - three)
    with db.session() as s:
        count = s.execute(select(func.count()).select_from(LedgerRow)).scalar_one()
        row = s.get(DatasetRow, "d1")
        assert row is not None
        budget = ledger.get_budget(s, row)
    assert count == 3  # the refusal wrote nothing
    assert budget.epsilon_spent == 0
    assert budget.epsilon_reserved == pytest.approx(three)
    assert budget.epsilon_reserved_sum == pytest.approx(3 * EPS)
    assert budget.delta_used == pytest.approx(3 * DELTA)
    assert "PLD" in budget.composition

    # j1 stops after one step: it is charged that step, and the budget frees up accordingly.
    p = _plan()
    with db.session() as s:
        ledger.commit(
            s,
            "d1",
            job_id="j1",
            epsilon_spent=0.3,
            delta=DELTA,
            reserved_epsilon=EPS,
            reserved_delta=DELTA,
            note="cancelled",
            steps=1,
            noise_multiplier=p.noise_multiplier,
            sample_rate=p.sample_rate,
        )
    with db.session() as s:
        row = s.get(DatasetRow, "d1")
        assert row is not None
        after = ledger.get_budget(s, row)
    assert 0 < after.epsilon_spent < 0.3 + 1e-9
    assert after.epsilon_spent_sum == pytest.approx(0.3)
    assert after.epsilon_total < three
    _reserve(db, "j4")  # now it fits


def _plan_for(epsilon: float, delta: float) -> DpSgdPlan:
    return plan_dp_sgd(
        n_records=N, batch_size=64, epochs=EPOCHS, target_epsilon=epsilon, target_delta=delta
    )


def _run(db: Database, job: str, *, epsilon: float, delta: float, finish: bool = True) -> None:
    """Reserve a job the way CreateTrainingJob does and, with ``finish``, charge it in full."""
    plan = _plan_for(epsilon, delta)
    with db.session() as s:
        ledger.reserve(s, "d1", job_id=job, epsilon=epsilon, delta=delta, actor="t", plan=plan)
    if finish:
        with db.session() as s:
            ledger.commit(
                s,
                "d1",
                job_id=job,
                epsilon_spent=epsilon,
                delta=delta,
                reserved_epsilon=epsilon,
                reserved_delta=delta,
                note="done",
                steps=plan.steps,
                noise_multiplier=plan.noise_multiplier,
                sample_rate=plan.sample_rate,
            )


def _budget(db: Database) -> ledger.BudgetView:
    with db.session() as s:
        row = s.get(DatasetRow, "d1")
        assert row is not None
        return ledger.get_budget(s, row)


# A large job at a tiny δ, then a small one at a large δ: composed at Σ δ_j, the second charge
# loosened the first job's δ by 500× and the composed spend fell (7.98 -> 5.57 here), and while
# the second job was only reserved it looked free (issue 11).
BIG, SMALL = (8.0, 1e-8), (0.5, 5e-6)


def test_a_reserved_job_counts_against_the_composed_budget_while_it_runs(tmp_path: Path) -> None:
    db = _db(tmp_path, cap=10.0)
    _run(db, "j1", epsilon=BIG[0], delta=BIG[1])
    done = _budget(db)
    _run(db, "j2", epsilon=SMALL[0], delta=SMALL[1], finish=False)
    running = _budget(db)
    assert running.epsilon_spent == pytest.approx(done.epsilon_spent)
    assert 0 < running.epsilon_reserved <= SMALL[0]
    assert running.epsilon_reserved_sum == SMALL[0]
    assert running.epsilon_remaining < done.epsilon_remaining
    assert running.epsilon_remaining == pytest.approx(
        done.epsilon_remaining - running.epsilon_reserved
    )


def test_the_composed_spend_never_decreases_after_a_charge(tmp_path: Path) -> None:
    from privsynth.server.privacy import audit

    db = _db(tmp_path, cap=20.0)
    spent, budgets = [0.0], []
    for job, (eps, delta) in (("j1", BIG), ("j2", SMALL), ("j3", (1.0, 4e-6))):
        _run(db, job, epsilon=eps, delta=delta)
        budgets.append(_budget(db))
        spent.append(budgets[-1].epsilon_spent)
    assert all(a < b for a, b in itertools.pairwise(spent)), spent
    for b in budgets:
        assert b.accounting_delta == DELTA_CAP  # one δ for the dataset, whatever the jobs hold
        assert b.epsilon_spent <= b.epsilon_spent_sum
        assert b.epsilon_reserved == 0
    # The first job alone, restated at the cap's δ (> its own): below its own ε.
    assert spent[1] < BIG[0]
    # Every charge's audit entry carries the composed totals the ledger computed then.
    committed = [json.loads(e.details) for e in audit.entries(db) if e.action == "budget.committed"]
    assert [d["epsilon_spent_after"] for d in committed] == [b.epsilon_spent for b in budgets]
    assert [d["epsilon_composed_after"] for d in committed] == [b.epsilon_total for b in budgets]
    assert all(d["accounting_delta"] == DELTA_CAP for d in committed)


def test_only_a_delta_cap_change_restates_the_composed_spend(tmp_path: Path) -> None:
    db = _db(tmp_path, cap=20.0)
    _run(db, "j1", epsilon=BIG[0], delta=BIG[1])
    _run(db, "j2", epsilon=SMALL[0], delta=SMALL[1])
    at_cap = _budget(db)

    def set_delta_cap(delta: float) -> ledger.BudgetView:
        with db.session() as s:
            return ledger.change_cap(s, "d1", epsilon_cap=20.0, delta_cap=delta, actor="admin")

    stricter = set_delta_cap(6e-6)  # a lower δ cap states a stricter guarantee: more ε
    assert stricter.accounting_delta == 6e-6
    assert at_cap.epsilon_spent < stricter.epsilon_spent <= stricter.epsilon_spent_sum
    # Below the δ the jobs already hold, the figures are stated at their Σ δ_j.
    below = set_delta_cap(1e-6)
    assert below.accounting_delta == pytest.approx(BIG[1] + SMALL[1])
    assert stricter.epsilon_spent < below.epsilon_spent <= below.epsilon_spent_sum
    with db.session() as s, pytest.raises(ResourceExhausted, match="delta"):
        ledger.reserve(s, "d1", job_id="j3", epsilon=0.1, delta=1e-8, actor="t")
    assert set_delta_cap(DELTA_CAP).epsilon_spent == pytest.approx(at_cap.epsilon_spent)


def test_delta_cap_is_enforced_on_the_sum_of_job_deltas(tmp_path: Path) -> None:
    db = _db(tmp_path, cap=1000.0)
    with db.session() as s:
        ledger.reserve(s, "d1", job_id="a", epsilon=1.0, delta=6e-6, actor="t")
    with db.session() as s, pytest.raises(ResourceExhausted, match="delta"):
        ledger.reserve(s, "d1", job_id="b", epsilon=1.0, delta=6e-6, actor="t")
    assert math.isfinite(compose_epsilon([JobCharge(1.0, 6e-6)], delta=6e-6)[0])


def test_accounting_a_label_release_warns_nothing_while_other_threads_use_warnings() -> None:
    """PRV's log(1 - q) at q = 1 must not surface as a RuntimeWarning (an INTERNAL error where
    warnings are errors) when a training thread enters and leaves ``catch_warnings`` meanwhile:
    the warnings filters are process-global, so ignoring it there was racy (seen in CI)."""
    import threading
    import time

    from privsynth.server.privacy import accounting

    errors: list[BaseException] = []
    stop = threading.Event()

    def training_thread() -> None:
        while not stop.is_set():
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="unrelated")
                time.sleep(0.002)

    def plan_jobs(seed: int) -> None:
        try:
            for i in range(15):  # uncached: each history is new
                sigma = 1.0 + 0.01 * (seed * 100 + i)
                accounting._accountant_epsilon("prv", [(sigma, 0.05, 40), (3.0, 1.0, 1)], 1e-5)
        except BaseException as exc:  # any escape is the failure under test
            errors.append(exc)

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        churn = threading.Thread(target=training_thread)
        churn.start()
        planners = [threading.Thread(target=plan_jobs, args=(k,)) for k in range(3)]
        for t in planners:
            t.start()
        for t in planners:
            t.join()
        stop.set()
        churn.join()
    assert not errors, repr(errors[0])


@pytest.mark.parametrize("cap", [1e308, float("inf"), 0.0, -1.0])
def test_a_cap_change_bounds_epsilon_like_an_upload(tmp_path: Path, cap: float) -> None:
    from privsynth.server.errors import InvalidArgument

    db = _db(tmp_path, cap=20.0)
    with db.session() as s, pytest.raises(InvalidArgument) as exc:
        ledger.change_cap(s, "d1", epsilon_cap=cap, delta_cap=None, actor="admin")
    assert exc.value.field == "epsilon_cap"
