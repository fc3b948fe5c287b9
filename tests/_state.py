"""The state of an estimator as plain values, for tests that compare it."""

import torch


def _plain(value):
    """``value`` with tensors as arrays: views of one storage compare by value."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def estimator_state(vae):
    """Everything an estimator holds, as plain comparable values."""
    state = {}
    for key, value in vae.__dict__.items():
        if key == "module_":
            value = value.state_dict()
        elif key == "_optimizer" and value is not None:
            value = value.state_dict()
        elif key == "_random_state":
            value = value.get_state()
        elif key == "_history":
            value = vars(value)
        state[key] = _plain(value)
    return state
