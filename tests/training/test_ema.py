"""The moving average of the weights: MACE's (torch_ema's) warm-up of the decay, restarts, no host reads."""

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gaunt_tp.testing import host_read_backs
from gaunt_tp.training.ema import MovingAverage, warmed_up_decay


def _weights_sequence(model: torch.nn.Module, count: int, seed: int) -> list[list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(p.shape, p.dtype) for p in model.parameters()]
    return [[torch.randn(shape, generator=generator, dtype=dtype) for shape, dtype in shapes] for _ in range(count)]


def _set(model: torch.nn.Module, values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(model.parameters(), values):
            p.copy_(v)


def test_warmed_up_decay_by_hand():
    assert warmed_up_decay(0.99, 1) == 2 / 11
    assert warmed_up_decay(0.99, 889) == 890 / 899  # still below 0.99
    assert warmed_up_decay(0.99, 890) == 0.99 == warmed_up_decay(0.99, 10**6)
    assert warmed_up_decay(0.5, 3) == 4 / 13 and warmed_up_decay(0.5, 9) == 0.5


def test_average_follows_the_warmed_up_recursion():
    model = torch.nn.Linear(3, 2, dtype=torch.float64)
    average = MovingAverage(model, 0.999)
    sequence = _weights_sequence(model, 25, seed=0)
    expected = None
    for n, values in enumerate(sequence, start=1):
        _set(model, values)
        average.update_parameters(model)
        if expected is None:  # the first update copies the weights
            expected = [v.clone() for v in values]
        else:
            d = min(0.999, (1 + n) / (10 + n))
            expected = [d * e + (1 - d) * v for e, v in zip(expected, values)]
    for got, want in zip(average.module.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-14)
    # with the fixed decay 0.999 the average would still sit near the first weights
    first = sequence[0]
    assert all((got - f).abs().max() > 0.1 for got, f in zip(average.module.parameters(), first))


def test_restart_from_state_dict_continues_the_same_decays():
    model = torch.nn.Linear(4, 3, dtype=torch.float64)
    sequence = _weights_sequence(model, 30, seed=1)
    whole = MovingAverage(model, 0.99)
    for values in sequence:
        _set(model, values)
        whole.update_parameters(model)
    first = MovingAverage(model, 0.99)
    for values in sequence[:12]:
        _set(model, values)
        first.update_parameters(model)
    resumed = MovingAverage(torch.nn.Linear(4, 3, dtype=torch.float64), 0.99)
    resumed.load_state_dict(first.state_dict())
    for values in sequence[12:]:
        _set(model, values)
        resumed.update_parameters(model)
    for got, want in zip(resumed.module.parameters(), whole.module.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_an_update_reads_nothing_back_from_the_device():
    """No host synchronisation per training step (AveragedModel's count, a tensor, is read back at every update)."""
    model = torch.nn.Linear(3, 2, dtype=torch.float64)
    average = MovingAverage(model, 0.99)
    average.update_parameters(model)
    assert host_read_backs(lambda: average.update_parameters(model)) == set()
    averaged_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    averaged_model.update_parameters(model)
    assert host_read_backs(lambda: averaged_model.update_parameters(model))  # what the test would catch


def test_checkpoints_of_averaged_model_load_with_their_count():
    """Earlier checkpoints hold an AveragedModel's state (``module.*``, ``n_averaged``): the weights and the number
    of updates carry over."""
    model = torch.nn.Linear(3, 2, dtype=torch.float64)
    old = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))
    for values in _weights_sequence(model, 5, seed=2):
        _set(model, values)
        old.update_parameters(model)
    average = MovingAverage(torch.nn.Linear(3, 2, dtype=torch.float64), 0.99)
    average.load_state_dict(old.state_dict())
    assert average.updates == 5
    for got, want in zip(average.module.parameters(), old.module.parameters()):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert set(average.state_dict()) == {"module.weight", "module.bias", "_extra_state"}


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_decay_outside_zero_to_one_is_a_value_error(decay):
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got"):
        MovingAverage(torch.nn.Linear(2, 2), decay)
