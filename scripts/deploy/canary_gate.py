"""The canary's gate: at a rollout step, the canary revision and the stable one are measured over the same
window from the service's own Prometheus series, and the step passes only if every check holds.

The series carry the revision as `revision_name`, the label Google's Managed Service for Prometheus sidecar for
Cloud Run adds to every metric it scrapes (with `service_name` and `configuration_name`; BentoML's own
`service_name` becomes `exported_service_name`), so that one query per figure tells the revisions apart. The
thresholds are scripts/deploy/settings.py's Canary settings (docs/configuration.md).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from penguin_serve.contract import SPECIES
from scripts.deploy.settings import Canary
from service import ROUTES

PREDICTION_ENDPOINTS_REGEX = "|".join(ROUTES)


@dataclass(frozen=True)
class Figures:
    """One side's traffic over the window: prediction requests and their answers, and the rows classified."""

    requests: float
    server_errors: float
    latency: dict[str, float]  # answers at most `le` seconds, by le: the cumulative latency histogram
    rows: float
    out_of_distribution_rows: float
    confidence_sum: float
    species: dict[str, float]
    missing: tuple[str, ...] = ()  # series this side does not have (an image older than the gate)

    def buckets(self) -> list[tuple[float, float]]:
        """(le, answers at most le), rising: increase() extrapolates each bucket on its own, so a running
        maximum keeps the counts cumulative, as histogram_quantile does."""
        rising, highest = [], 0.0
        for le, count in sorted((float(le), count) for le, count in self.latency.items()):
            highest = max(highest, count)
            rising.append((le, highest))
        return rising

    def quantile(self, q: float) -> float | None:
        """As PromQL's histogram_quantile: linear within the bucket that holds the rank; None without answers."""
        buckets = self.buckets()
        if not buckets or buckets[-1][1] <= 0:
            return None
        rank, lower, below = q * buckets[-1][1], 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if math.isinf(upper):
                    return lower
                return lower + (upper - lower) * ((rank - below) / (count - below) if count > below else 1.0)
            lower, below = upper, count
        return lower  # without a +Inf bucket: the highest bound

    def answered_within(self, seconds: float) -> float:
        """Answers of at most `seconds`, interpolated within its bucket."""
        lower, below = 0.0, 0.0
        for upper, count in self.buckets():
            if seconds <= upper and not math.isinf(upper):
                return below + (count - below) * (seconds - lower) / (upper - lower)
            if math.isinf(upper):
                return below
            lower, below = upper, count
        return below

    @property
    def answers(self) -> float:
        buckets = self.buckets()
        return buckets[-1][1] if buckets else 0.0

    @property
    def error_ratio(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    @property
    def out_of_distribution_share(self) -> float:
        return self.out_of_distribution_rows / self.rows if self.rows else 0.0

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.rows if self.rows else None

    @property
    def species_mix(self) -> dict[str, float]:
        total = sum(self.species.values())
        return {name: (self.species.get(name, 0.0) / total if total else 0.0) for name in SPECIES}


@dataclass(frozen=True)
class Check:
    name: str
    canary: float | None
    limit: float | None
    passed: bool
    words: str


class Prometheus:
    """Instant PromQL queries against a Prometheus HTTP API. The caller's access token (Managed Service for
    Prometheus) is sent over https only."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token and self.url.startswith("https://") else {}

    def result(self, expression: str, at: float) -> list[dict]:
        answer = requests.get(
            f"{self.url}/api/v1/query", params={"query": expression, "time": at}, headers=self.headers, timeout=30
        )
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def value(self, expression: str, at: float) -> float | None:
        """The value of a query that sums to one series; None where it has no series or is NaN."""
        result = self.result(expression, at)
        number = float(result[0]["value"][1]) if result else math.nan
        return None if math.isnan(number) else number

    def by(self, expression: str, label: str, at: float) -> dict[str, float]:
        return {series["metric"].get(label, ""): float(series["value"][1]) for series in self.result(expression, at)}


def measure(prometheus: Prometheus, revisions: list[str], window_s: int, at: float) -> Figures:
    """The figures of these revisions (summed) over the window_s seconds before `at` (a Unix time, the same for
    both sides)."""
    selector = f'revision_name=~"{"|".join(revisions)}"'
    endpoints = f'{selector},endpoint=~"{PREDICTION_ENDPOINTS_REGEX}"'
    window = f"[{window_s}s]"
    missing = []

    def total(metric: str, labels: str = selector, always_there: bool = True) -> float:
        """The series' increase; one that is always there and is not is missing (a series that exists only
        once something happened, such as a 5xx answer, is 0 without it)."""
        value = prometheus.value(f"sum(increase({metric}{{{labels}}}{window}))", at)
        if value is None and always_there:
            missing.append(metric)
        return value or 0.0

    latency = f"sum by (le) (increase(bentoml_service_request_duration_seconds_bucket{{{endpoints}}}{window}))"
    species = f"sum by (species) (increase(penguin_predictions_total{{{selector}}}{window}))"
    figures = {
        "requests": total("bentoml_service_request_total", endpoints),
        "server_errors": total("bentoml_service_request_total", f'{endpoints},http_response_code=~"5.."', always_there=False),
        "latency": prometheus.by(latency, "le", at),
        "rows": total("penguin_predictions_total"),
        "out_of_distribution_rows": total("penguin_out_of_distribution_rows_total"),
        "confidence_sum": total("penguin_confidence_sum_total"),
        "species": prometheus.by(species, "species", at),
    }
    return Figures(**figures, missing=tuple(missing))


def js_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon divergence in bits (0: the same mix, 1: no species in common)."""

    def kl(a: dict[str, float], b: dict[str, float]) -> float:
        return sum(a[k] * math.log2(a[k] / b[k]) for k in a if a[k] > 0)

    middle = {k: (p[k] + q[k]) / 2 for k in p}
    return (kl(p, middle) + kl(q, middle)) / 2


def checks(canary: Figures, stable: Figures, limits: Canary) -> list[Check]:
    """Every comparison of the canary with the stable revision; each names its figures and its limit. Sides
    without the same series cannot be compared: that alone fails the step."""
    if problem := incomparable(canary, stable):
        return [Check("series", None, None, False, problem)]
    found = []
    error_limit = max(limits.max_error_ratio, stable.error_ratio + limits.max_error_ratio_increase)
    found.append(
        Check(
            "server errors",
            canary.error_ratio,
            error_limit,
            canary.error_ratio <= error_limit,
            f"5xx share {canary.error_ratio:.2%} against the stable revision's {stable.error_ratio:.2%} "
            f"(limit {error_limit:.2%})",
        )
    )
    found += [quantile_check(f"latency p{q * 100:g}", q, canary, stable, limits) for q in (0.5, 0.99)]
    ood_limit = stable.out_of_distribution_share + limits.max_out_of_distribution_increase
    found.append(
        Check(
            "inputs",
            canary.out_of_distribution_share,
            ood_limit,
            canary.out_of_distribution_share <= ood_limit,
            f"{canary.out_of_distribution_share:.2%} of rows out of distribution against the stable revision's "
            f"{stable.out_of_distribution_share:.2%}",
        )
    )
    divergence = js_divergence(canary.species_mix, stable.species_mix)
    found.append(
        Check(
            "species mix",
            divergence,
            limits.max_species_divergence,
            divergence <= limits.max_species_divergence,
            f"Jensen-Shannon divergence {divergence:.3f} between {mix_text(canary)} and the stable revision's {mix_text(stable)}",
        )
    )
    canary_confidence, stable_confidence = canary.mean_confidence, stable.mean_confidence
    confidence_limit = None if stable_confidence is None else stable_confidence - limits.max_confidence_drop
    found.append(
        Check(
            "confidence",
            canary_confidence,
            confidence_limit,
            canary_confidence is not None and confidence_limit is not None and canary_confidence >= confidence_limit,
            f"mean confidence {number_text(canary_confidence)} against the stable revision's {number_text(stable_confidence)}",
        )
    )
    return found


def incomparable(canary: Figures, stable: Figures) -> str | None:
    """Why the two sides' series cannot be compared, if they cannot."""
    for side, figures in (("canary", canary), ("stable revision", stable)):
        if figures.missing:
            return f"the {side} has no {', '.join(figures.missing)}: its image predates the gate; deploy it once first"
    if canary.latency and stable.latency and canary.latency.keys() != stable.latency.keys():
        return "the revisions' latency histograms have different buckets: one image predates the gate's buckets"
    return None


def quantile_check(name: str, q: float, canary: Figures, stable: Figures, limits: Canary) -> Check:
    """The canary's q-quantile at most max_latency_ratio times the stable one's, judged on the canary's answers
    slower than that limit: the check fails when they are significantly more than the share 1 - q of its answers
    (a one-sided binomial test at limits.significance). The ratio of two quantiles moves with noise by a bucket's
    width, itself 1.2 (and a sub-millisecond median lies in the first bucket); the p99 of 200 answers is their 2nd
    slowest, so it moves with one late answer. The share past the limit does not."""
    canary_quantile, stable_quantile = canary.quantile(q), stable.quantile(q)
    words = f"{seconds_text(canary_quantile)} against the stable revision's {seconds_text(stable_quantile)}"
    if canary_quantile is None or stable_quantile is None:
        return Check(name, canary_quantile, None, False, words)
    limit = limits.max_latency_ratio * stable_quantile
    answers = round(canary.answers)
    slower = answers - round(canary.answered_within(limit))
    p_value = binomial_tail(slower, answers, 1 - q)
    passed = p_value >= limits.significance
    words += (
        f": {slower} of {answers} answers slower than {seconds_text(limit)}, "
        f"{'not ' if passed else ''}significantly more than {(1 - q) * 100:g} % (p = {p_value:.2g})"
    )
    return Check(name, canary_quantile, limit, passed, words)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    return min(
        1.0,
        sum(
            math.exp(
                math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
            )
            for i in range(k, n + 1)
        ),
    )


def seconds_text(value: float | None) -> str:
    return "no answers" if value is None else f"{value * 1000:.1f} ms"


def number_text(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def mix_text(figures: Figures) -> str:
    return "/".join(f"{share:.0%}" for share in figures.species_mix.values()) + " " + "/".join(SPECIES)


@dataclass
class Step:
    """One step's judgement: the figures, the checks and the verdict, as its decision record line."""

    percent: int
    canary_revision: str
    stable_revisions: list[str]
    window_s: int
    canary: Figures | None
    stable: Figures | None
    checks: list[Check]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def record(self, limits: Canary) -> dict:
        figures = {"canary": self.canary, "stable": self.stable}
        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "step_percent": self.percent,
            "canary_revision": self.canary_revision,
            "stable_revisions": self.stable_revisions,
            "window_s": self.window_s,
            "figures": {side: None if value is None else recorded(value) for side, value in figures.items()},
            "thresholds": limits.thresholds(),
            "checks": [asdict(check) for check in self.checks],
            "verdict": "pass" if self.passed else "fail",
        }


def recorded(figures: Figures) -> dict:
    """A side's figures as the record keeps them: as measured (the histogram by rising bound) and as judged."""
    return {
        **asdict(figures),
        "latency": {le: figures.latency[le] for le in sorted(figures.latency, key=float)},
        "p50_s": figures.quantile(0.5),
        "p99_s": figures.quantile(0.99),
        "error_ratio": figures.error_ratio,
        "out_of_distribution_share": figures.out_of_distribution_share,
        "mean_confidence": figures.mean_confidence,
        "species_mix": figures.species_mix,
    }


def judge_step(
    prometheus: Prometheus,
    limits: Canary,
    percent: int,
    canary_revision: str,
    stable_revisions: list[str],
    min_wait_s: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Step:
    """Waits at least min_wait_s and until both sides have served limits.min_requests prediction requests since
    the step began, then compares them; a deadline without that much traffic fails the step."""
    started = clock()
    deadline = max(limits.deadline_s, min_wait_s)
    while True:
        now = clock()
        elapsed = now - started
        if elapsed >= min_wait_s:
            window_s = math.ceil(elapsed)
            canary = measure(prometheus, [canary_revision], window_s, now)
            stable = measure(prometheus, stable_revisions, window_s, now)
            if min(canary.requests, stable.requests) >= limits.min_requests:
                return Step(percent, canary_revision, stable_revisions, window_s, canary, stable, checks(canary, stable, limits))
            if elapsed >= deadline:
                words = (
                    f"the canary served {canary.requests:.0f} and the stable revision {stable.requests:.0f} prediction "
                    f"requests in {window_s} s: fewer than {limits.min_requests} to decide on"
                )
                fewest = min(canary.requests, stable.requests)
                check = Check("traffic", fewest, limits.min_requests, False, words)
                return Step(percent, canary_revision, stable_revisions, window_s, canary, stable, [check])
        sleep(limits.poll_s)


class Record:
    """The rollout's decision record: one JSON line per judged step, then the decision."""

    def __init__(self, limits: Canary, canary_revision: str) -> None:
        self.limits = limits
        self.path = Path(limits.record_dir) / f"{canary_revision}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write(self, line: dict) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(line) + "\n")

    def step(self, step: Step) -> None:
        self.write(step.record(self.limits))

    def decide(self, decision: str, reason: str) -> str:
        self.write({"decision": decision, "reason": reason})
        return f"decision: {decision}: {reason}"


def failure_words(step: Step) -> str:
    return "; ".join(f"{check.name}: {check.words}" for check in step.failed)
