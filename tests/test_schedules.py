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


def test_decay_applies_at_end_of_epoch():
    cfg = validate_config({"data": {"dataset": "planar"}, "model": {"layers": ["auto", 1]},
                           "optimizer": {"name": "adam", "learning_rate": 0.5},
                           "schedule": {"name": "inverse_time", "decay_rate": 1}})
    lr = build_schedule(cfg)
    # epoch 0 trains at lr0; the decay computed at the end of epoch e is what epoch e + 1 uses
    assert [lr(e) for e in range(4)] == pytest.approx([0.5, 0.5, 0.25, 0.5 / 3])
