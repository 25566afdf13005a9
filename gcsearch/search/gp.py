"""The accuracy model of ehvi (``search.strategy``): exact Gaussian-process regression on the
one-hot encoding of a candidate's axis values.

Kept apart from the strategy that asks it: it knows rows of features and targets only, not
networks, costs or hypervolume. Hyperparameters (length scale, noise, the additive part's
weight, the tables' prior weight) are picked by marginal likelihood over small grids, so a fit
is a few Cholesky factorisations of a told x told matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Length scales (on one-hot distance) and noise levels the marginal likelihood picks from.
LENGTH_SCALES = (0.7, 1.0, 1.5, 2.5)
NOISES = (1e-3, 1e-2, 1e-1, 0.3)
#: Weights of the additive part of the kernel the marginal likelihood picks from, when
#: ``EHVISettings.additive`` is on (off: 0 only, the product kernel alone).
ADDITIVE_WEIGHTS = (0.0, 0.5, 0.9)
#: Weights of the tables' axis-value effects in the top-1 model's prior mean (in the told
#: networks' spread) the marginal likelihood picks from, when ``EHVISettings.prior`` is on
PRIOR_WEIGHTS = (0.0, 1.0)
#: Pool rows predicted at once (memory: CHUNK x told floats per array).
CHUNK = 4096


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of ``a`` and of ``b`` (len(a) x len(b)), as
    |a|^2 + |b|^2 - 2 a.b: exact on one-hot rows (small integers), and len(a) x len(b) in memory
    instead of the difference's len(a) x len(b) x features."""
    return (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * (a @ b.T)


class GP:
    """Exact GP regression on standardised targets; hyperparameters by marginal likelihood.

    The kernel is ``(1 - w) exp(-d^2 / 2 ell^2) + w (x . y) / axes`` on one-hot rows (unit
    diagonal either way): ``w`` = 0 is the squared-exponential kernel alone, ``w`` > 0 adds
    an additive part (``ADDITIVE_WEIGHTS``).

    ``beta`` (one effect per one-hot feature, in standard deviations: ``search.prior``) makes
    the prior mean ``b * sd(y) * (x . beta - its mean over the told)`` instead of a constant;
    the marginal likelihood picks ``b`` from ``PRIOR_WEIGHTS`` with the other
    hyperparameters (b = 0: the effects are not believed)."""

    w: float = 0.0
    axes: float = 1.0
    beta: np.ndarray | None = None
    b: float = 0.0
    pscale: float = 0.0
    pm0: float = 0.0

    #: log marginal likelihood of y summed over the grid this fit picked from (its evidence)
    evidence: float = 0.0

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weights: Sequence[float] = (0.0,),
        beta: np.ndarray | None = None,
        prior_weights: Sequence[float] = PRIOR_WEIGHTS,
        amplitude: tuple[float, float] | None = None,
    ) -> None:
        self.x, self.beta = x, beta
        self.axes = axes_of(x)
        spread = _amplitude(y, amplitude)
        m = x @ beta if beta is not None else np.zeros(len(x))
        best = None
        lmls: list[float] = []
        dot = x @ x.T
        d2 = sq_distances(x, x)
        rbf = {ell: np.exp(-d2 / (2 * ell**2)) for ell in LENGTH_SCALES}  # once per length
        eye = np.eye(len(x))
        for b in prior_weights if beta is not None else (0.0,):
            yr = y - b * spread * (m - m.mean())  # what the kernel models: y less the prior
            mean, scale = float(yr.mean()), _amplitude(yr, amplitude)
            z = (yr - mean) / scale
            jacobian = len(y) * math.log(scale)  # likelihoods of y, comparable across b
            for w in weights:
                for ell in LENGTH_SCALES:
                    for noise in NOISES:
                        k = (1 - w) * rbf[ell] + w * dot / self.axes + noise * eye
                        try:
                            chol = np.linalg.cholesky(k)
                        except np.linalg.LinAlgError:
                            continue
                        alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
                        lml = -0.5 * z @ alpha - np.log(np.diag(chol)).sum() - jacobian
                        lmls.append(float(lml))
                        if best is None or lml > best[0]:
                            best = (lml, w, ell, noise, chol, alpha, b, mean, scale, z)
        assert best is not None
        _, self.w, self.ell, self.noise, self.chol, self.alpha = best[:6]
        self.b, self.mean, self.scale, self._z = best[6:]
        self.pscale, self.pm0 = spread, float(m.mean()) if len(m) else 0.0
        self._xx = (x**2).sum(1)
        top = max(lmls)
        self.evidence = top + math.log(sum(math.exp(v - top) for v in lmls) / len(lmls))

    @classmethod
    def prior(cls, x: np.ndarray, mean: float, scale: float, beta: np.ndarray | None = None) -> GP:
        """A GP with no measurement yet: ``mean`` everywhere (plus ``scale`` x the effects of
        ``beta`` where given), its variance lowered only near ``x`` (networks in flight
        believed at the prior mean); length scale 1.5, noise 1e-2."""
        gp = object.__new__(cls)
        gp.mean, gp.scale, gp.ell, gp.noise = mean, scale, 1.5, 1e-2
        gp.x, gp.axes = x, axes_of(x)
        gp.beta, gp.b, gp.pscale, gp.pm0 = beta, 1.0, scale, 0.0
        d2 = sq_distances(x, x)
        gp.chol = np.linalg.cholesky(np.exp(-d2 / (2 * gp.ell**2)) + gp.noise * np.eye(len(x)))
        gp._z = gp.alpha = np.zeros(len(x))
        gp._xx = (x**2).sum(1)
        return gp

    def _shift(self, xs: np.ndarray) -> np.ndarray | float:
        """The prior mean's part from the effects at rows ``xs`` (0 without them)."""
        if self.beta is None or not self.b:
            return 0.0
        return self.b * self.pscale * (xs @ self.beta - self.pm0)

    def conditioned(self, xr: np.ndarray, yr: np.ndarray) -> GP:
        """This GP with ``(xr, yr)`` added as data, hyperparameters and standardisation kept."""
        gp = object.__new__(GP)
        gp.mean, gp.scale, gp.ell, gp.noise = self.mean, self.scale, self.ell, self.noise
        gp.w, gp.axes = self.w, self.axes
        gp.beta, gp.b, gp.pscale, gp.pm0 = self.beta, self.b, self.pscale, self.pm0
        gp.x = np.vstack([self.x, xr])
        z = np.concatenate([self._z, (yr - self._shift(xr) - self.mean) / self.scale])
        gp._xx = (gp.x**2).sum(1)
        k = gp._kernel(gp.x) + gp.noise * np.eye(len(gp.x))
        gp.chol = np.linalg.cholesky(k)
        gp.alpha = np.linalg.solve(gp.chol.T, np.linalg.solve(gp.chol, z))
        gp._z = z
        return gp

    def _kernel(self, xs: np.ndarray) -> np.ndarray:
        # squared distances as |a|^2 + |b|^2 - 2 a.b: exact (small integers) on 0/1 features,
        # and pool x told x 1 in memory instead of pool x told x features
        dot = xs @ self.x.T
        d2 = (xs**2).sum(1)[:, None] + self._xx[None, :] - 2.0 * dot
        k = np.exp(-np.clip(d2, 0.0, None) / (2 * self.ell**2))
        return k if not self.w else (1 - self.w) * k + self.w * dot / self.axes

    def predict(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at the rows of ``xs`` (in chunks)."""
        mus, sds = [], []
        for lo in range(0, max(1, len(xs)), CHUNK):
            ks = self._kernel(xs[lo : lo + CHUNK])
            mu = ks @ self.alpha
            v = np.linalg.solve(self.chol, ks.T)
            var = np.clip(1.0 - (v**2).sum(0), 1e-9, None)
            mus.append(self.mean + self.scale * mu + self._shift(xs[lo : lo + CHUNK]))
            sds.append(self.scale * np.sqrt(var))
        return np.concatenate(mus), np.concatenate(sds)

    def predict_fast(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` through the inverse Cholesky factor (computed once): the same figures
        to rounding, for the few rows a screened ask evaluates exactly."""
        if getattr(self, "_linv", None) is None:
            from scipy.linalg import solve_triangular

            self._linv = solve_triangular(self.chol, np.eye(len(self.chol)), lower=True)
        ks = self._kernel(xs)
        v = self._linv @ ks.T
        var = np.clip(1.0 - (v**2).sum(0), 1e-9, None)
        mu = self.mean + self.scale * (ks @ self.alpha) + self._shift(xs)
        return mu, self.scale * np.sqrt(var)

    def screen(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and an upper bound of the standard deviation (the variance given
        the nearest told network alone: more data never raises a GP's variance), at
        pool x told cost instead of the exact variance's pool x told^2."""
        mus, sds = [], []
        for lo in range(0, max(1, len(xs)), CHUNK):
            ks = self._kernel(xs[lo : lo + CHUNK])
            mus.append(
                self.mean + self.scale * (ks @ self.alpha) + self._shift(xs[lo : lo + CHUNK])
            )
            kmax = ks.max(1) if ks.shape[1] else np.zeros(len(ks))
            var = np.clip(1.0 - kmax**2 / (1.0 + self.noise), 1e-9, None)
            sds.append(self.scale * np.sqrt(var) * (1 + 1e-6) + 1e-9)
        return np.concatenate(mus), np.concatenate(sds)


def _amplitude(y: np.ndarray, prior: tuple[float, float] | None) -> float:
    """The signal's standard deviation: the spread of ``y``, or with ``prior = (s0, n0)`` that
    spread pooled with ``n0`` pseudo-results of spread ``s0`` (the variance's conjugate
    update), so a few results that happen to agree (a haystack of networks at chance) do not
    persuade the model that nothing can be better."""
    if prior is None:
        return float(y.std()) or 1.0
    s0, n0 = prior
    return math.sqrt((len(y) * float(y.var()) + n0 * s0**2) / (len(y) + n0)) or 1.0


class Mixture:
    """GPs that differ in the weight of the tables' prior, averaged by their evidence.

    With a handful of results the marginal likelihood cannot tell whether the tables' effects
    hold for this task, and picking the likelier weight (``GP``) believes a coin flip in full;
    averaging the fits for every weight in ``PRIOR_WEIGHTS`` (each over the other
    hyperparameters, weighted by its evidence summed over the grid) keeps both beliefs until
    the results decide. Predictions are moment-matched to one normal (the mixture's mean and
    variance), so the acquisition reads a ``Mixture`` as it reads a ``GP``."""

    def __init__(self, parts: Sequence[GP], weights: Sequence[float]) -> None:
        self.parts, self.weights = list(parts), np.asarray(weights, dtype=float)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        weights: Sequence[float],
        beta: np.ndarray,
        keep: float = 1e-4,
        amplitude: tuple[float, float] | None = None,
    ) -> GP | Mixture:
        """One fit per prior weight, mixed by evidence; a single ``GP`` where every other
        fit's posterior weight is below ``keep`` (results have decided, and an ask costs what
        it cost before)."""
        parts = [GP(x, y, weights, beta, (b,), amplitude) for b in PRIOR_WEIGHTS]
        ev = np.array([p.evidence for p in parts])
        post = np.exp(ev - ev.max())
        post /= post.sum()
        held = [i for i, w in enumerate(post) if w >= keep]
        if len(held) == 1:
            return parts[held[0]]
        return cls([parts[i] for i in held], post[held] / post[held].sum())

    def _mix(self, outs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        mu = sum(w * m for w, (m, _) in zip(self.weights, outs, strict=True))
        second = sum(w * (s**2 + m**2) for w, (m, s) in zip(self.weights, outs, strict=True))
        return mu, np.sqrt(np.clip(second - mu**2, 1e-18, None))

    def predict(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mixture's mean and standard deviation at the rows of ``xs``."""
        return self._mix([p.predict(xs) for p in self.parts])

    def predict_fast(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` through each part's ``predict_fast``."""
        return self._mix([p.predict_fast(xs) for p in self.parts])

    def screen(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mixture's mean and an upper bound of its sd (each part's bound in the
        variance: the between-part spread is exact, the within-part one bounded)."""
        return self._mix([p.screen(xs) for p in self.parts])

    def conditioned(self, xr: np.ndarray, yr: np.ndarray) -> Mixture:
        """Every part with ``(xr, yr)`` added as data; weights and hyperparameters kept."""
        return Mixture([p.conditioned(xr, yr) for p in self.parts], self.weights)


def axes_of(x: np.ndarray) -> float:
    """The number of axes of one-hot rows (the most ones in a row; 1 where there are none)."""
    return max(float(x.sum(1).max()), 1.0) if len(x) else 1.0


__all__ = [
    "ADDITIVE_WEIGHTS",
    "CHUNK",
    "GP",
    "LENGTH_SCALES",
    "NOISES",
    "PRIOR_WEIGHTS",
    "Mixture",
    "axes_of",
    "sq_distances",
]
