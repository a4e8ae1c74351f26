"""Search spaces of a sweep: which GPTConfig/TrainConfig fields vary, over which values, checked up front.

Follows Optuna's distributions (a list of values is a categorical choice or a grid axis; log_uniform /
uniform are ranges for random or TPE search). Any field of either dataclass may be swept, found
generically with dataclasses.fields, so a field added to a config later works without a change here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import types
import typing
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from .model_config import GPTConfig
from .train_config import TrainConfig

METHODS = ("grid", "random", "tpe")
# fields the sweep sets itself, with the reason a learner sees
SET_BY_SWEEP = {
    "max_iters": "the budget sets it (tokens=, flops= or seconds=)",
    "max_time": "the budget sets it (seconds=)",
    "out_dir": "the sweep writes one results file, not a checkpoint per run",
    "progress": "the sweep shows one bar over the runs",
}


def log_uniform(low: float, high: float) -> FloatDistribution:
    """A range sampled uniformly in log space (learning rates): log_uniform(1e-4, 1e-2)."""
    return FloatDistribution(low, high, log=True)


def uniform(low: float, high: float) -> FloatDistribution | IntDistribution:
    """A range sampled uniformly; integers give an integer range: uniform(2, 6) -> 2, 3, 4, 5 or 6."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        return IntDistribution(low, high)
    return FloatDistribution(low, high)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_fields() -> dict[str, tuple[Any, ...]]:
    """name -> the type hints it has in GPTConfig and/or TrainConfig (block_size is in both)."""
    found: dict[str, tuple[Any, ...]] = {}
    for cls in (GPTConfig, TrainConfig):
        hints = _hints(cls)
        for f in dataclasses.fields(cls):
            found[f.name] = (*found.get(f.name, ()), hints[f.name])
    return found


def _arms(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _fits(value: Any, hint: Any) -> bool:
    for arm in _arms(hint):
        base = typing.get_origin(arm) or arm
        if arm is type(None) and value is None:
            return True
        if base is bool and isinstance(value, bool):
            return True
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if base is str and isinstance(value, str):
            return True
        if base is tuple and isinstance(value, (tuple, list)):
            return True
        if base not in (bool, int, float, str, tuple, type(None)):
            return True  # a type this check does not know: the config's own validation decides
    return False


def _type_name(hint: Any) -> str:
    names = {bool: "True/False", int: "an integer", float: "a number", str: "a string",
             tuple: "a tuple", type(None): "None"}
    return " or ".join(names.get(typing.get_origin(a) or a, str(a)) for a in _arms(hint))


def check_value(name: str, value: Any) -> None:
    """ValueError unless `value` has the type field `name` declares."""
    for hint in config_fields()[name]:
        if not _fits(value, hint):
            raise ValueError(f"search space: {name} values must be {_type_name(hint)}, got {value!r}")


def check_space(space: Any, method: str) -> dict[str, list | BaseDistribution] | list[dict]:
    """The space with every name and value checked; each list becomes a list of distinct values.

    A list of dicts is a list of points (e.g. model shapes that are not a product of two lists).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if isinstance(space, list) and space and all(isinstance(p, dict) and p for p in space):
        if method != "grid":
            raise ValueError("a list of points is run as given: use method='grid'")
        for point in space:
            check_space({name: [value] for name, value in point.items()}, method)
        return space
    if not isinstance(space, dict) or not space:
        raise ValueError("search space must be a non-empty dict {field: [values] or a range}, e.g. "
                         "{'learning_rate': [1e-3, 3e-3]}, or a list of points [{'n_layer': 2}, ...]")
    fields = config_fields()
    out: dict[str, list | BaseDistribution] = {}
    for name, values in space.items():
        if name in SET_BY_SWEEP:
            raise ValueError(f"search space: {name} cannot be swept: {SET_BY_SWEEP[name]}")
        if name not in fields:
            raise ValueError(f"search space: unknown field {name!r}; sweepable fields of GPTConfig and "
                             f"TrainConfig: {', '.join(sorted(set(fields) - set(SET_BY_SWEEP)))}")
        if isinstance(values, BaseDistribution):
            if method == "grid":
                raise ValueError(f"search space: {name} is a range; a grid needs a list of values "
                                 "(ranges are for method='random' or 'tpe')")
            for end in (values.low, values.high):
                check_value(name, end)
            out[name] = values
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, range)):
            raise ValueError(f"search space: {name} needs a list of values or a range, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"search space: {name} has no values; give at least one")
        distinct = []
        for v in values:
            check_value(name, v)
            if v not in distinct:
                distinct.append(v)
        out[name] = distinct
    return out


def configs_for(params: dict, model_config: GPTConfig, train_config: TrainConfig) -> tuple[GPTConfig,
                                                                                          TrainConfig]:
    """The two configs with `params` applied; a value a config rejects is a one-line ValueError."""
    model_fields = {f.name for f in dataclasses.fields(model_config)}
    train_fields = {f.name for f in dataclasses.fields(train_config)}
    try:
        m = dataclasses.replace(model_config, **{k: v for k, v in params.items() if k in model_fields})
        t = dataclasses.replace(train_config, **{k: v for k, v in params.items() if k in train_fields})
    except (ValueError, TypeError) as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise ValueError(f"search space: {shown} is not a valid configuration: {e}") from None
    return m, t


def grid_points(space: dict[str, list] | list[dict]) -> list[dict]:
    """Every combination, the last field varying fastest (a list of points: those points)."""
    if isinstance(space, list):
        return [dict(p) for p in space]
    names = list(space)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*space.values())]


def distributions(space: dict[str, list | BaseDistribution]) -> dict[str, BaseDistribution]:
    """Optuna distributions; a list becomes a categorical choice over its positions (values may be tuples)."""
    return {name: v if isinstance(v, BaseDistribution) else CategoricalDistribution(tuple(range(len(v))))
            for name, v in space.items()}


def from_optuna(space: dict[str, list | BaseDistribution], sampled: dict[str, Any]) -> dict:
    """Optuna's sampled params -> config values (a list's position -> its value)."""
    return {name: sampled[name] if isinstance(v, BaseDistribution) else v[sampled[name]]
            for name, v in space.items()}


def to_optuna(space: dict[str, list | BaseDistribution], params: dict) -> dict | None:
    """Config values -> Optuna's params, or None when the point lies outside this space."""
    out = {}
    for name, v in space.items():
        if name not in params:
            return None
        value = params[name]
        if isinstance(v, BaseDistribution):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not v.low <= value <= v.high:
                return None
            out[name] = value
        else:
            matches = [i for i, choice in enumerate(v) if canonical(choice) == canonical(value)]
            if not matches:
                return None
            out[name] = matches[0]
    return out if set(params) == set(space) else None


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs a line per trial at INFO; a sweep has its own bar, so only warnings show meanwhile."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def random_points(space: dict[str, list | BaseDistribution], n: int, seed: int) -> list[dict]:
    """n points drawn by Optuna's RandomSampler: the same points for the same space and seed."""
    with quiet_optuna():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        dists = distributions(space)
        return [from_optuna(space, study.ask(dists).params) for _ in range(n)]


def canonical(value: Any) -> str:
    """A JSON spelling that is the same before and after a JSON round trip (tuples become lists)."""
    return json.dumps(value, sort_keys=True)


def parse_value(name: str, text: str) -> Any:
    """A command-line value for field `name`, by the field's type: '3e-3', '4', 'true', 'none', 'cosine'."""
    fields = config_fields()
    if name not in fields:
        raise ValueError(f"unknown field {name!r}; sweepable fields of GPTConfig and TrainConfig: "
                         f"{', '.join(sorted(set(fields) - set(SET_BY_SWEEP)))}")
    arms = [typing.get_origin(a) or a for hint in fields[name][:1] for a in _arms(hint)]
    t = text.strip()
    if type(None) in arms and t.lower() == "none":
        return None
    if bool in arms and t.lower() in ("true", "false"):
        return t.lower() == "true"
    for kind in (int, float):
        if kind in arms:
            try:
                v = kind(t)
            except ValueError:
                continue
            if kind is float and not math.isfinite(v):
                break
            return v
    if str in arms:
        return t
    raise ValueError(f"{name} values must be {_type_name(fields[name][0])}, got {text!r}")


__all__ = ["METHODS", "SET_BY_SWEEP", "check_space", "configs_for", "grid_points", "log_uniform",
           "parse_value", "quiet_optuna", "random_points", "uniform"]
