from __future__ import annotations

import pytest

from gcsearch.errors import UserError
from gcsearch.tasks import TASKS, Budget, get_task


def test_budget_round_trip_and_replace() -> None:
    b = Budget(train_images=100, epochs=2, augment="flip")
    assert Budget.from_dict(b.to_dict()) == b
    assert b.replace(epochs=3, lr=None).epochs == 3
    assert b.replace(lr=None).lr == b.lr  # None keeps the value


@pytest.mark.parametrize(
    ("changes", "word"),
    [
        ({"epochs": 0}, "epochs"),
        ({"train_images": 1.5}, "train_images"),
        ({"augment": "mixup"}, "flip-crop"),
        ({"eval_split": "train"}, "val, test"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"lr": -1.0}, "lr"),
        ({"image_size": 2}, "image_size"),
        ({"image_size": [16, 64, 3]}, "image_size"),
        ({"image_size": [16, 2]}, "image_size"),
        ({"optimizer": "adam"}, "sgd, adamw"),
    ],
)
def test_budget_rejects_bad_values(changes: dict[str, object], word: str) -> None:
    with pytest.raises(UserError, match=word):
        Budget(**changes)  # type: ignore[arg-type]


def test_budget_from_a_record_written_before_optimizer_existed() -> None:
    """Trial records and measured figures written before ``optimizer`` existed read back as
    the SGD they were trained with (so resume and ``tasks list`` still match them)."""
    old = Budget().to_dict()
    del old["optimizer"]
    assert Budget.from_dict(old) == Budget() and Budget().optimizer == "sgd"


def test_budget_unknown_field() -> None:
    with pytest.raises(UserError, match="unknown field 'epoch'"):
        Budget().replace(epoch=3)


def test_get_task_errors() -> None:
    with pytest.raises(UserError, match="synthetic"):
        get_task("imagenet")
    with pytest.raises(UserError, match="reads no files"):
        get_task("synthetic", "/tmp")


@pytest.mark.parametrize("name", ["synthetic", "digits", "fashion-mnist", "cifar10"])
def test_task_contract(name: str) -> None:
    task = get_task(name)
    assert task.name == name and name in TASKS
    assert len(task.input_shape) == 3 and task.num_classes >= 2
    assert isinstance(task.budget, Budget)
    assert task.summary()


def test_image_size_pair_sets_the_shape_of_every_resizing_task() -> None:
    """[H, W] (a list from TOML or JSON) is kept as a pair; each task's ``shape_at`` is the
    shape its loaders yield and its costs are counted at."""
    b = Budget.from_dict({**Budget().to_dict(), "image_size": [16, 64]})
    assert b.image_size == (16, 64) and Budget.from_dict(b.to_dict()) == b
    assert get_task("cifar10").shape_at(b) == (3, 16, 64)
    assert get_task("imagefolder").shape_at(Budget(image_size=48)) == (3, 48, 48)
    assert get_task("synthetic").shape_at(Budget(image_size=96)) == (3, 16, 96)
    assert get_task("digits").shape_at(Budget()) == (1, 8, 8)
    with pytest.raises(UserError, match="not a strip"):
        get_task("synthetic").shape_at(b)
