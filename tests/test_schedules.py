import pytest

from dltrain.commands.build import build_schedule
from dltrain.config import validate_config
from dltrain.engine.schedules import SCHEDULES

TABLE = [
    ("constant", {}, 0.5, 7, 0.5),
    ("inverse_time", {"decay_rate": 1}, 0.5, 2, 1 / 6),
    ("inverse_time", {"decay_rate": 0.5}, 0.2, 4, 0.2 / 3),
    ("interval", {"decay_rate": 0.3, "time_interval": 100}, 0.5, 100, 0.3846153846153846),
    ("interval", {"decay_rate": 0.3, "time_interval": 100}, 0.5, 99, 0.5),
    ("interval", {"decay_rate": 1}, 0.01, 2500, 0.01 / 3),
    ("exponential", {"base": 0.95}, 0.2, 2, 0.2 * 0.9025),
    ("inverse_sqrt", {"k": 2.0}, 0.1, 3, 0.1),
    ("step", {"rates": {10: 0.01, 20: 0.001}}, 0.1, 9, 0.1),
    ("step", {"rates": {10: 0.01, 20: 0.001}}, 0.1, 15, 0.01),
    ("step", {"rates": {10: 0.01, 20: 0.001}}, 0.1, 20, 0.001),
]


@pytest.mark.parametrize("name,kwargs,lr0,epoch,expected", TABLE)
def test_schedule_table(name, kwargs, lr0, epoch, expected):
    assert SCHEDULES[name](lr0, epoch, **kwargs) == pytest.approx(expected, rel=1e-15)


def _cfg(schedule: dict, lr0: float):
    return validate_config({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 1]},
                            "optimizer": {"name": "adam", "learning_rate": lr0}, "schedule": schedule})


# The documented formula of each schedule (docs/training.md, `dltrain config schema`) as the rate
# training epoch e (0-based) trains with: the course's decays apply at the end of an epoch, so epoch
# 0 trains at lr0 and epoch e >= 1 at formula(e - 1); step's rates {E: r} train epoch E on at r.
def _decayed(formula):
    return lambda lr0, e: lr0 if e == 0 else formula(lr0, e - 1)


DOCUMENTED = {
    "constant": ({}, _decayed(lambda lr0, n: lr0)),
    "inverse_time": ({"decay_rate": 1.0}, _decayed(lambda lr0, n: lr0 / (1 + 1.0 * n))),
    "interval": ({"decay_rate": 1.0, "time_interval": 1000}, _decayed(lambda lr0, n: lr0 / (1 + 1.0 * (n // 1000)))),
    "exponential": ({"base": 0.5}, _decayed(lambda lr0, n: lr0 * 0.5**n)),
    "inverse_sqrt": ({"k": 2.0}, _decayed(lambda lr0, n: 2.0 * lr0 / (n + 1) ** 0.5)),
    "step": ({"rates": {0: 0.3, 10: 0.01, 20: 0.001}}, lambda lr0, e: 0.3 if e < 10 else 0.01 if e < 20 else 0.001),
}

# (schedule, epoch, the rate that epoch trains with), at every boundary the formulas have.
BOUNDARIES = [
    ("constant", 0, 0.1), ("constant", 1, 0.1), ("constant", 2, 0.1),
    ("inverse_time", 0, 0.1), ("inverse_time", 1, 0.1), ("inverse_time", 2, 0.05), ("inverse_time", 3, 0.1 / 3),
    ("interval", 0, 0.1), ("interval", 1, 0.1), ("interval", 999, 0.1), ("interval", 1000, 0.1),
    ("interval", 1001, 0.05), ("interval", 2000, 0.05), ("interval", 2001, 0.1 / 3),
    ("exponential", 0, 0.1), ("exponential", 1, 0.1), ("exponential", 2, 0.05), ("exponential", 3, 0.025),
    ("inverse_sqrt", 0, 0.1), ("inverse_sqrt", 1, 0.2), ("inverse_sqrt", 2, 0.2 / 2**0.5), ("inverse_sqrt", 4, 0.1),
    ("step", 0, 0.3), ("step", 9, 0.3), ("step", 10, 0.01), ("step", 19, 0.01), ("step", 20, 0.001), ("step", 500, 0.001),
]


def test_every_schedule_is_in_the_boundary_table():
    assert set(DOCUMENTED) == set(SCHEDULES) == {name for name, _, _ in BOUNDARIES}


@pytest.mark.parametrize("name,epoch,expected", BOUNDARIES)
def test_schedule_at_its_boundaries_follows_its_documented_formula(name, epoch, expected):
    kwargs, formula = DOCUMENTED[name]
    lr = build_schedule(_cfg({"name": name, **kwargs}, 0.1))
    assert lr(epoch) == pytest.approx(formula(0.1, epoch), rel=1e-15)
    assert lr(epoch) == pytest.approx(expected, rel=1e-15)


def test_step_applies_from_the_listed_epoch():
    # `dltrain config schema`: "epoch -> learning rate from that epoch on"
    lr = build_schedule(_cfg({"name": "step", "rates": {51: 0.1}}, 1.2))
    assert [lr(e) for e in (0, 50, 51, 52)] == [1.2, 1.2, 0.1, 0.1]


def test_decay_applies_at_end_of_epoch():
    cfg = validate_config({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 1]},
                           "optimizer": {"name": "adam", "learning_rate": 0.5},
                           "schedule": {"name": "inverse_time", "decay_rate": 1}})
    lr = build_schedule(cfg)
    # epoch 0 trains at lr0; the decay computed at the end of epoch e is what epoch e + 1 uses
    assert [lr(e) for e in range(4)] == pytest.approx([0.5, 0.5, 0.25, 0.5 / 3])


def test_step_rates_read_back_from_a_run_folder():
    # config.yaml and model.h5 record the resolved config as JSON values: the epochs become "12"
    from dltrain.commands.build import resolved_config

    cfg = _cfg({"name": "step", "rates": {12: 0.6}}, 1.2)
    again = validate_config(resolved_config(cfg, 2))
    assert again.schedule.rates == {12: 0.6} and build_schedule(again)(12) == 0.6
