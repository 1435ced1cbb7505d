"""Errors raised on bad user input. Each message names the bad value and the valid choices."""


class CoresweepError(ValueError):
    """Base class for every input error coresweep raises before doing any work."""


class PlacementError(CoresweepError):
    """A thread count, strategy or CPU list that cannot be placed on this machine."""


class ModelError(CoresweepError):
    """A model that cannot be found, built or driven as a causal LM with a KV cache."""


class ParamsError(CoresweepError):
    """A parameter file or override that is unknown, mistyped or invalid."""


def check_choice(name: str, value: object, choices: tuple, error: type = CoresweepError) -> None:
    """``error`` naming ``name``, the bad value and the valid choices unless ``value`` is one."""
    if value not in choices:
        raise error(f"{name}={value!r}; valid: {', '.join(map(str, choices))}")
