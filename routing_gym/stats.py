"""Intervals and tests for comparisons over the same questions: what a table may call a difference.

Every comparison the project prints is reported with the number of questions ``n`` and a 95%
interval, paired over the same questions when two methods are compared:

* ``mean_interval(values)``: the mean of per-question values and its bootstrap interval
  (``scipy.stats.bootstrap``, BCa, a fixed seed so that printed tables are reproducible).
* ``paired_difference_interval(a, b)``: the mean of ``a − b`` over the same questions, resampled
  in pairs (``paired=True``): a question drawn brings both methods' values with it.
* ``gap_captured_interval(router, best, oracle[, baseline])``: the share of the
  best-single-to-oracle gap a router captures (or the difference of two routers' shares), with
  its paired bootstrap interval.
* ``mcnemar_exact(a, b)``: the exact McNemar test for paired 0/1 outcomes; it is a two-sided
  binomial test (``scipy.stats.binomtest``, p = 1/2) on the discordant pairs only.
* ``seed_spread(values)``: mean ± sample std (ddof=1) over training seeds and how many seeds.
* ``verdict(interval)``: ``"resolved"`` where the interval excludes 0, else ``"not resolved"``.
* ``minimum_detectable_difference(differences, n)``: before a run, the smallest true paired
  difference that ``n`` questions detect (two-sided, 95%, power 0.8), from the per-question
  spread of differences measured on an existing table.

Degenerate samples are answered without resampling: one value, or values that are all equal,
give a zero-width interval at that value (scipy would return NaN with a warning). A zero-width
interval from a single question is no evidence, so ``verdict`` calls nothing with ``n < 2``.
Where BCa is undefined for a sample that is not constant (its bootstrap distribution lies
entirely on one side of the estimate), the percentile interval is used instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

#: Confidence level of every interval the project prints.
LEVEL = 0.95
#: Bootstrap resamples (scipy's default); with the fixed seed the interval is the same every run.
N_RESAMPLES = 9999
#: Seed of the bootstrap's random generator.
SEED = 0
RESOLVED, NOT_RESOLVED = "resolved", "not resolved"


@dataclass(frozen=True)
class Interval:
    """A mean (or mean difference) over ``n`` questions and its confidence interval."""

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval (never with fewer than two questions)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    @property
    def width(self) -> float:
        """high − low."""
        return self.high - self.low

    def format(self, digits: int = 3, signed: bool = False) -> str:
        """``0.123 [0.100, 0.150]``; ``signed`` writes ``+`` before positive numbers."""
        spec = f"{'+' if signed else ''}.{digits}f"
        return f"{_fmt(self.estimate, spec)} [{_fmt(self.low, spec)}, {_fmt(self.high, spec)}]"

    def __str__(self) -> str:
        return self.format()


def _fmt(value: float, spec: str) -> str:
    text = format(value, spec)
    # -0.000 and +0.000 read as a sign that the data do not have
    return text.replace("-", "").replace("+", "") if float(text) == 0 else text


def _as_sample(values: Iterable[float], name: str) -> np.ndarray:
    array = np.asarray(
        list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64
    )
    array = array.reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty: an interval needs at least one question.")
    if not np.all(np.isfinite(array)):
        bad = array[~np.isfinite(array)][0]
        raise ValueError(
            f"{name} holds a non-finite value ({float(bad)!r}); drop or fix that question first."
        )
    return array


def _constant(sample: np.ndarray) -> bool:
    """One value, or all equal up to rounding (e.g. b + 0.25 − b): nothing to resample."""
    return bool(np.ptp(sample) <= 1e-12 * max(1.0, float(np.max(np.abs(sample)))))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}.")


def _bootstrap(
    data: tuple[np.ndarray, ...],
    statistic,
    paired: bool,
    level: float,
    n_resamples: int,
    rng: int | np.random.Generator,
) -> tuple[float, float]:
    """scipy's BCa bootstrap interval; the percentile interval where BCa is undefined."""
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    state = generator.bit_generator.state  # the same resamples for the fallback
    for method in ("BCa", "percentile"):
        generator.bit_generator.state = state
        with warnings.catch_warnings():
            # BCa's acceleration is 0/0 on near-constant samples: then the percentile interval
            warnings.simplefilter("ignore", scipy_stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = scipy_stats.bootstrap(
                data,
                statistic,
                paired=paired,
                vectorized=True,
                confidence_level=level,
                n_resamples=n_resamples,
                method=method,
                rng=generator,
            )
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    raise ValueError(
        "the bootstrap gave no finite interval for this sample."
    )  # not reached in practice


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _mean_difference(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def mean_interval(
    values: Iterable[float],
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    rng: int | np.random.Generator = SEED,
) -> Interval:
    """The mean of per-question ``values`` and its bootstrap interval (zero width if constant)."""
    _check_level(level)
    sample = _as_sample(values, "values")
    estimate = float(sample.mean())
    if _constant(sample):
        return Interval(estimate, estimate, estimate, int(sample.size), level)
    low, high = _bootstrap((sample,), _mean, False, level, n_resamples, rng)
    return Interval(estimate, low, high, int(sample.size), level)


def paired_difference_interval(
    a: Iterable[float],
    b: Iterable[float],
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    rng: int | np.random.Generator = SEED,
) -> Interval:
    """The mean of ``a − b`` over the same questions and its paired bootstrap interval."""
    _check_level(level)
    first, second = _as_sample(a, "a"), _as_sample(b, "b")
    if first.shape != second.shape:
        raise ValueError(
            f"a and b must hold the same questions: {first.size} values against {second.size}."
        )
    differences = first - second
    estimate = float(differences.mean())
    if _constant(differences):
        return Interval(estimate, estimate, estimate, int(differences.size), level)
    low, high = _bootstrap((first, second), _mean_difference, True, level, n_resamples, rng)
    return Interval(estimate, low, high, int(differences.size), level)


def _gap_share(router, best, oracle, axis=-1):
    return np.mean(router - best, axis=axis) / np.mean(oracle - best, axis=axis)


def _gap_share_difference(a, b, best, oracle, axis=-1):
    return np.mean(a - b, axis=axis) / np.mean(oracle - best, axis=axis)


def gap_captured_interval(
    router: Iterable[float],
    best_single: Iterable[float],
    oracle: Iterable[float],
    baseline: Iterable[float] | None = None,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    rng: int | np.random.Generator = SEED,
) -> Interval:
    """The share of the best-single-to-oracle gap a router captures, ``mean(router − best) /
    mean(oracle − best)``, and its paired bootstrap interval over the same questions (a question
    drawn brings its router, best-single and oracle rewards along).

    With ``baseline`` (another router's per-question rewards) it is the difference of the two
    shares, ``mean(router − baseline) / mean(oracle − best)``. The best single model is the
    one given (chosen once on the whole sample), not re-chosen per resample.
    """
    _check_level(level)
    parts = [_as_sample(router, "router"), _as_sample(best_single, "best_single"),
             _as_sample(oracle, "oracle")]
    if baseline is not None:
        parts.insert(1, _as_sample(baseline, "baseline"))
    if len({p.size for p in parts}) != 1:
        raise ValueError(
            f"the rewards must hold the same questions, got sizes {[p.size for p in parts]}."
        )
    statistic = _gap_share if baseline is None else _gap_share_difference
    best, oracle_values = parts[-2], parts[-1]
    if not float(np.mean(oracle_values - best)) > 0:
        raise ValueError("gap captured needs an oracle above the best single model on average.")
    estimate = float(statistic(*parts))
    numerator = parts[0] - parts[1]
    if _constant(numerator) and _constant(oracle_values - best):
        return Interval(estimate, estimate, estimate, int(best.size), level)
    low, high = _bootstrap(tuple(parts), statistic, True, level, n_resamples, rng)
    return Interval(estimate, low, high, int(best.size), level)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of paired 0/1 outcomes."""

    only_a: int  # questions a got right and b got wrong
    only_b: int  # questions b got right and a got wrong
    n: int
    pvalue: float

    @property
    def discordant(self) -> int:
        """Questions on which a and b disagree."""
        return self.only_a + self.only_b


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> McNemar:
    """Exact two-sided McNemar test: ``binomtest(only_a, only_a + only_b, 0.5)``.

    The concordant questions carry no information about which method is better; under the
    null each discordant question falls either way with probability 1/2. With no discordant
    question the p-value is 1.
    """
    first, second = _as_sample(a, "a"), _as_sample(b, "b")
    if first.shape != second.shape:
        raise ValueError(
            f"a and b must hold the same questions: {first.size} values against {second.size}."
        )
    for name, sample in (("a", first), ("b", second)):
        if not np.all((sample == 0) | (sample == 1)):
            bad = sample[(sample != 0) & (sample != 1)][0]
            raise ValueError(f"McNemar needs 0/1 outcomes; {name} holds {float(bad)!r}.")
    only_a = int(np.sum((first == 1) & (second == 0)))
    only_b = int(np.sum((first == 0) & (second == 1)))
    pvalue = (
        1.0
        if only_a + only_b == 0
        else float(scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    )
    return McNemar(only_a, only_b, int(first.size), pvalue)


@dataclass(frozen=True)
class SeedSpread:
    """One number over training seeds: the mean, the sample std (ddof=1) and how many seeds."""

    mean: float
    std: float  # 0.0 for one seed: there is no spread to estimate
    n_seeds: int

    def format(self, digits: int = 3) -> str:
        """``0.123 ± 0.004 (3 seeds)``, or ``0.123 (1 seed)``."""
        seeds = f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}"
        if self.n_seeds == 1:
            return f"{self.mean:.{digits}f} ({seeds})"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({seeds})"


def seed_spread(values: Iterable[float]) -> SeedSpread:
    """Mean ± sample std over seeds (each value is one seed's result)."""
    sample = _as_sample(values, "values")
    std = float(sample.std(ddof=1)) if sample.size > 1 else 0.0
    return SeedSpread(float(sample.mean()), std, int(sample.size))


def verdict(interval: Interval) -> str:
    """``"resolved"`` where the interval excludes 0, otherwise ``"not resolved"``."""
    return RESOLVED if interval.excludes_zero else NOT_RESOLVED


def difference_cell(interval: Interval, higher_is_better: bool = True, digits: int = 3) -> str:
    """A table cell for a paired difference: the interval, then ``**beats**`` or ``below`` where
    it excludes 0 and ``not resolved`` where it does not."""
    text = interval.format(digits, signed=True)
    if not interval.excludes_zero:
        return f"{text} not resolved"
    better = interval.low > 0 if higher_is_better else interval.high < 0
    return f"{text} **beats**" if better else f"{text} below"


def resolved_best(
    samples: dict[str, Sequence[float]],
    higher_is_better: bool = True,
    rng: int | np.random.Generator = SEED,
) -> str | None:
    """The method with the best mean, if its paired interval against every other method
    excludes 0; otherwise None (no method may be marked best)."""
    if len(samples) < 2:
        return None
    sign = 1.0 if higher_is_better else -1.0
    means = {name: sign * float(np.mean(values)) for name, values in samples.items()}
    top = max(means, key=means.get)
    for name, values in samples.items():
        if name == top:
            continue
        difference = paired_difference_interval(samples[top], values, rng=rng)
        if not (difference.excludes_zero and sign * difference.estimate > 0):
            return None
    return top


#: Power at which ``minimum_detectable_difference`` is quoted.
POWER = 0.8


def minimum_detectable_difference(
    differences: Iterable[float], n: int | None = None, level: float = LEVEL, power: float = POWER
) -> float:
    """The smallest true mean difference that a paired two-sided test on ``n`` questions
    detects with probability ``power`` at confidence ``level``.

    ``differences`` are per-question differences measured on an existing table (for example
    one assignment minus another); their sample std (ddof=1) stands for the spread of the
    differences the run will measure. Normal approximation:
    ``(z_{(1+level)/2} + z_power) * sd / sqrt(n)``; ``n`` defaults to the number of
    differences given. A constant sample (sd 0) gives 0: nothing can be said about the run.
    """
    _check_level(level)
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}.")
    sample = _as_sample(differences, "differences")
    if sample.size < 2:
        raise ValueError(f"differences need at least 2 questions to give a spread, got {sample.size}.")
    size = sample.size if n is None else int(n)
    if size < 1:
        raise ValueError(f"n must be a positive number of questions, got {n!r}.")
    z = scipy_stats.norm.ppf((1 + level) / 2) + scipy_stats.norm.ppf(power)
    return float(z * sample.std(ddof=1) / np.sqrt(size))
