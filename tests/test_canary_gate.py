"""The canary gate's judgement (scripts/deploy/canary_gate.py) on given figures: each check at its limit and just past
it, the divergence's bounds, and a step's waiting. The gate against a real Prometheus and real revisions is in
tests/test_cloud_run_releases.py."""

from __future__ import annotations

import dataclasses
import json

import pytest

from scripts.deploy import canary_gate
from scripts.deploy.canary_gate import Figures, checks, js_divergence
from scripts.deploy.settings import Canary

LIMITS = Canary.from_env({})
MIX = {"Adelie": 44.0, "Chinstrap": 20.0, "Gentoo": 36.0}
BOUNDS = (0.005, 0.01, 0.02, 0.04, 0.08)


def histogram(durations: list[float]) -> dict[str, float]:
    """The cumulative latency histogram of these answers, keyed as Prometheus's `le` label."""
    counts = {str(bound): float(sum(d <= bound for d in durations)) for bound in BOUNDS}
    return {**counts, "+Inf": float(len(durations))}


# 1000 answers: 500 of 5-10 ms, 490 of 10-20 ms, 10 of 20-40 ms: p50 10 ms, p99 20 ms.
USUAL = [0.0075] * 500 + [0.015] * 490 + [0.03] * 10
STABLE = Figures(
    requests=1000, server_errors=0, latency=histogram(USUAL), rows=1000, out_of_distribution_rows=10,
    confidence_sum=950, species=MIX,
)  # fmt: skip


def verdicts(canary: Figures, stable: Figures = STABLE) -> dict[str, bool]:
    return {check.name: check.passed for check in checks(canary, stable, LIMITS)}


def failed(canary: Figures, stable: Figures = STABLE) -> list[str]:
    return [name for name, passed in verdicts(canary, stable).items() if not passed]


def test_the_defaults_are_the_documented_thresholds():
    assert (LIMITS.min_requests, LIMITS.deadline_s, LIMITS.significance) == (200, 1800, 0.001)
    assert (LIMITS.max_error_ratio, LIMITS.max_error_ratio_increase) == (0.005, 0.002)
    assert (LIMITS.max_latency_ratio, LIMITS.max_out_of_distribution_increase) == (1.2, 0.01)
    assert (LIMITS.max_species_divergence, LIMITS.max_confidence_drop) == (0.05, 0.02)


def test_a_canary_like_the_stable_revision_passes_every_check():
    assert verdicts(STABLE) == dict.fromkeys(
        ["server errors", "latency p50", "latency p99", "inputs", "species mix", "confidence"], True
    )


@pytest.mark.parametrize(
    ("stable_errors", "canary_errors", "passes"),
    [(0, 5, True), (0, 6, False), (10, 12, True), (10, 13, False)],  # max(0.5 %, stable + 0.2 points) of 1000
)
def test_server_errors_pass_up_to_the_floor_or_the_stable_share_plus_its_margin(stable_errors, canary_errors, passes):
    stable = dataclasses.replace(STABLE, server_errors=stable_errors)
    canary = dataclasses.replace(STABLE, server_errors=canary_errors)
    assert ("server errors" not in failed(canary, stable)) is passes


def test_quantiles_are_interpolated_within_their_bucket_as_histogram_quantile_does():
    assert (STABLE.quantile(0.5), STABLE.quantile(0.99)) == (pytest.approx(0.010), pytest.approx(0.020))
    assert STABLE.quantile(0.25) == pytest.approx(0.0075)  # rank 250 of the 500 in (5, 10] ms
    assert STABLE.answered_within(0.015) == pytest.approx(745)  # 500 + half of the 490 in (10, 20] ms
    assert dataclasses.replace(STABLE, latency={}).quantile(0.5) is None


def test_the_histogram_is_read_cumulative_and_past_its_last_bound_as_promql_does():
    # increase() extrapolates each bucket alone: a bucket may read below the one before it.
    uneven = dataclasses.replace(STABLE, latency={"0.005": 10.0, "0.01": 9.5, "+Inf": 20.0})
    assert uneven.buckets() == [(0.005, 10.0), (0.01, 10.0), (float("inf"), 20.0)]
    assert uneven.quantile(0.99) == 0.01  # the rank lies in +Inf: the highest finite bound
    assert uneven.answered_within(1.0) == 10.0  # past the last finite bound: only what it holds


def test_a_slower_canary_fails_both_latency_checks_and_one_without_answers_too():
    slower = dataclasses.replace(STABLE, latency=histogram([d * 1.5 for d in USUAL]))
    assert failed(slower) == ["latency p50", "latency p99"]
    assert failed(dataclasses.replace(STABLE, latency={})) == ["latency p50", "latency p99"]


@pytest.mark.parametrize(
    ("within_10_ms", "within_20_ms", "passes"),
    [(370, 610, True), (300, 690, False)],  # p50 12.1 ms (508 answers past 12 ms) and 12.9 ms (562 past it)
)
def test_the_median_fails_only_when_significantly_more_than_half_the_answers_are_past_its_limit(
    within_10_ms, within_20_ms, passes
):
    """Against the stable p50 of 10 ms, the limit is 12 ms. Binomial(1000, 50 %): 508 or more past it has p = 0.31,
    562 or more p = 5e-5. The raw ratio of the two medians fails both."""
    durations = [0.0075] * within_10_ms + [0.0115] * within_20_ms + [0.03] * (1000 - within_10_ms - within_20_ms)
    canary = dataclasses.replace(STABLE, latency=histogram(durations))
    assert canary.quantile(0.5) > LIMITS.max_latency_ratio * STABLE.quantile(0.5)
    assert failed(canary) == ([] if passes else ["latency p50"])


def test_a_sub_millisecond_median_one_bucket_apart_passes_and_a_few_milliseconds_more_fails():
    """The service's buckets (service.py): a median under 1 ms lies in the first bucket, so two alike revisions'
    p50s may read 0.8 and 1.0 ms; a revision 5 ms slower (as the Cloud Run test's slow image) fails."""
    bounds = [round(0.001 * 1.2**index, 6) for index in range(20)]

    def side(durations: list[float]) -> Figures:
        latency = {str(bound): float(sum(d <= bound for d in durations)) for bound in bounds}
        return dataclasses.replace(
            STABLE, requests=200, rows=200, confidence_sum=190, latency={**latency, "+Inf": float(len(durations))}
        )

    def answers(first_bucket: int, added_s: float = 0.0) -> list[float]:
        return [added_s + d for d in [0.0009] * first_bucket + [0.0011] * (196 - first_bucket) + [0.002] * 4]

    stable, alike = side(answers(125)), side(answers(100))
    assert (stable.quantile(0.5), alike.quantile(0.5)) == (pytest.approx(0.0008), pytest.approx(0.001))
    assert failed(alike, stable) == []
    assert failed(side(answers(100, added_s=0.005)), stable) == ["latency p50", "latency p99"]


@pytest.mark.parametrize(("late", "passes"), [(3, True), (8, True), (9, False)])
def test_late_answers_fail_p99_only_when_significantly_more_than_one_in_a_hundred(late, passes):
    """200 canary answers like the stable ones, `late` of them past 1.2 x its p99 (24 ms). Binomial(200, 1 %): 3 or
    more has p = 0.32, 8 or more p = 0.0010, 9 or more p = 0.00021 (under the 0.001 significance)."""
    durations = [0.0075] * 100 + [0.015] * (100 - late) + [0.07] * late
    canary = dataclasses.replace(STABLE, requests=200, rows=200, confidence_sum=190, latency=histogram(durations))
    assert canary.quantile(0.99) > LIMITS.max_latency_ratio * STABLE.quantile(0.99)  # the raw ratio fails each time
    assert ("latency p99" not in failed(canary)) is passes


def test_the_binomial_tail_is_the_textbook_one():
    assert canary_gate.binomial_tail(0, 200, 0.01) == 1.0
    assert canary_gate.binomial_tail(1, 200, 0.01) == pytest.approx(1 - 0.99**200)
    assert canary_gate.binomial_tail(9, 200, 0.01) == pytest.approx(0.00021253677, rel=1e-6)
    assert canary_gate.binomial_tail(201, 200, 0.01) == 0.0


def test_sides_without_the_same_series_are_not_compared():
    older = dataclasses.replace(STABLE, missing=("penguin_confidence_sum_total",))
    [check] = checks(STABLE, older, LIMITS)
    assert (check.name, check.passed) == ("series", False)
    assert "stable revision has no penguin_confidence_sum_total" in check.words
    other_buckets = dataclasses.replace(STABLE, latency={"0.005": 1.0, "0.1": 900.0, "+Inf": 1000.0})
    assert [c.name for c in checks(other_buckets, STABLE, LIMITS)] == ["series"]


def test_inputs_pass_up_to_one_point_more_out_of_distribution():
    assert failed(dataclasses.replace(STABLE, out_of_distribution_rows=20)) == []
    assert failed(dataclasses.replace(STABLE, out_of_distribution_rows=21)) == ["inputs"]


def test_the_species_mix_fails_when_two_species_trade_places_and_confidence_when_it_drops():
    swapped = {"Adelie": 20.0, "Chinstrap": 44.0, "Gentoo": 36.0}
    assert failed(dataclasses.replace(STABLE, species=swapped)) == ["species mix"]
    assert failed(dataclasses.replace(STABLE, confidence_sum=930)) == []  # exactly 0.02 lower
    assert failed(dataclasses.replace(STABLE, confidence_sum=929)) == ["confidence"]


def test_jensen_shannon_divergence_is_zero_for_one_mix_and_one_bit_for_disjoint_ones():
    mix = {"Adelie": 0.5, "Chinstrap": 0.5, "Gentoo": 0.0}
    assert js_divergence(mix, mix) == 0
    assert js_divergence({"Adelie": 1.0, "Chinstrap": 0.0, "Gentoo": 0.0}, {"Adelie": 0.0, "Chinstrap": 0.0, "Gentoo": 1.0}) == 1
    assert js_divergence(mix, {"Adelie": 1.0, "Chinstrap": 0.0, "Gentoo": 0.0}) == pytest.approx(0.3113, abs=1e-4)


class Series:
    """A Prometheus that answers every sum with `requests(now)`; the species by an even mix."""

    def __init__(self, requests) -> None:
        self.requests, self.now, self.queries = requests, 0.0, []

    def value(self, expression: str, at: float) -> float:
        self.queries.append((expression, at))
        if "5.." in expression:
            return 0.0
        return float(self.requests(self.now))

    def by(self, expression: str, label: str, at: float) -> dict[str, float]:
        if label == "le":
            return histogram([0.0075] * round(self.requests(self.now)))
        return dict.fromkeys(MIX, 1.0)


def judged(prometheus: Series, limits: Canary, min_wait_s: float) -> canary_gate.Step:
    def sleep(seconds: float) -> None:
        prometheus.now += seconds

    return canary_gate.judge_step(prometheus, limits, 10, "canary-rev", ["stable-rev"], min_wait_s, lambda: prometheus.now, sleep)


def test_a_step_waits_its_time_and_its_traffic_then_judges_over_the_window_it_waited():
    limits = dataclasses.replace(LIMITS, min_requests=200, poll_s=5)
    prometheus = Series(lambda now: 10 * now)  # 10 requests a second each side
    step = judged(prometheus, limits, min_wait_s=10)
    assert (step.passed, step.window_s, prometheus.now) == (True, 20, 20)
    assert any('revision_name=~"canary-rev"' in q and "[20s]" in q for q, _ in prometheus.queries)
    assert any('revision_name=~"stable-rev"' in q for q, _ in prometheus.queries)
    assert {at for _, at in prometheus.queries[-10:]} == {20}  # both sides evaluated at one time


def test_a_step_without_enough_traffic_by_its_deadline_fails_naming_the_counts():
    limits = dataclasses.replace(LIMITS, min_requests=200, poll_s=5, deadline_s=30)
    step = judged(Series(lambda now: 3), limits, min_wait_s=10)
    assert not step.passed and [c.name for c in step.checks] == ["traffic"] and step.window_s == 30
    assert (
        step.checks[0].words
        == "the canary served 3 and the stable revision 3 prediction requests in 30 s: fewer than 200 to decide on"
    )


def test_the_record_holds_each_step_and_the_decision_in_words(tmp_path):
    limits = dataclasses.replace(LIMITS, record_dir=str(tmp_path), poll_s=1)
    record = canary_gate.Record(limits, "canary-rev")
    step = judged(Series(lambda now: 500), limits, min_wait_s=1)
    record.step(step)
    assert record.decide("promoted", "every check held") == "decision: promoted: every check held"
    [line, decision] = [json.loads(text) for text in record.path.read_text().splitlines()]
    assert line["verdict"] == "pass" and line["figures"]["canary"]["requests"] == 500
    assert line["thresholds"]["max_species_divergence"] == 0.05 and "prometheus_url" not in line["thresholds"]
    assert decision == {"decision": "promoted", "reason": "every check held"}
    assert record.path == tmp_path / "canary-rev.jsonl"


def test_late_answers_within_the_ratio_are_not_counted_against_p99():
    """Ten answers in 200 past the stable p99 (20 ms) but within 1.2 x of it (24 ms): as slow as the limit allows."""
    durations = [0.0075] * 100 + [0.015] * 90 + [0.022] * 10
    canary = dataclasses.replace(STABLE, requests=200, rows=200, confidence_sum=190, latency=histogram(durations))
    assert "latency p99" not in failed(canary)


def test_a_step_waits_for_the_stable_side_too():
    """The canary has its requests at once; the stable side never has: the step fails at its deadline."""
    limits = dataclasses.replace(LIMITS, min_requests=200, poll_s=5, deadline_s=30)
    prometheus = Series(lambda now: 500)
    prometheus.value = lambda expression, at: 500.0 if 'revision_name=~"canary-rev"' in expression else 10.0
    step = judged(prometheus, limits, min_wait_s=10)
    assert [c.name for c in step.checks] == ["traffic"] and step.window_s == 30


def test_a_series_the_service_always_has_is_missing_when_absent_and_5xx_is_not():
    class Older(Series):
        def value(self, expression: str, at: float) -> float | None:
            if "penguin_confidence_sum_total" in expression or "5.." in expression:
                return None
            return 100.0

    figures = canary_gate.measure(Older(lambda now: 100), ["old-rev"], 10, 0.0)
    assert figures.missing == ("penguin_confidence_sum_total",) and figures.server_errors == 0.0
