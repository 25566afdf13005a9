"""``train(compile=...)``: the training step through ``torch.compile`` trains the same network.

Tolerance: float64 (as tests/tasks/test_fused.py), where the compiled step differs from eager
only by the float order of its fused kernels, so losses agree to 1e-9 while a step that
computed something else (a dropped BatchNorm update, a stale graph) would move them by 1e-3 or
more. Slow: Inductor compiles C++ kernels for a minute or more on a 2-core CPU.
"""

from __future__ import annotations

import pytest

from gcsearch.errors import UserError
from gcsearch.tasks import get_task
from gcsearch.tasks.train import train


@pytest.mark.slow
def test_a_compiled_step_trains_as_the_eager_one(float64: None) -> None:
    task = get_task("digits")
    budget = task.budget.replace(train_images=128, val_images=64, epochs=2, batch_size=32)
    eager = train("gc", task, budget, 0)
    compiled = train("gc", task, budget, 0, compile="default")
    assert compiled.status == "complete" and compiled.env["compile"] == "default"
    assert compiled.top1 == eager.top1
    for a, b in zip(eager.history, compiled.history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-9)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-9)


def test_an_unknown_compile_mode_is_one_line() -> None:
    with pytest.raises(UserError, match="compile: 'fast'"):
        train("gc", "digits", None, 0, compile="fast")
