"""Prediction traffic to a service URL while a rollout runs: penguins drawn at random from a list, posted to
/predict from a few threads until stopped, every answer kept as (status, model version). Drawn, not cycled: any
stretch of the traffic has the list's species mix, as two revisions splitting it must see the same mix."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable

import requests

# A good canary's rollout runs with this latency tolerance. The stand-in's revisions share this machine's cores with
# each other and with the rest of the suite, where a Cloud Run instance has its vCPU to itself: in CI, a canary at
# its 10 % step, with the very image and model of the stable revision, answered slower than the gate's default
# ratio allows and was rolled back on p50 (its decision records); one loaded core here did not reproduce it. The
# gate's own default is judged where a fault is sized against it (the slow canary of test_cloud_run_releases.py).
SHARED_CORES_LATENCY_RATIO = "CANARY_MAX_LATENCY_RATIO=3"


class PredictionLoad:
    def __init__(self, url: str, token: Callable[[], str], birds: list[dict], threads: int = 4) -> None:
        self.url, self.token, self.threads = url, token, threads
        self.birds = birds
        self.answers: Counter = Counter()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.workers: list[threading.Thread] = []

    def send(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token()}"
        while not self.stopping.is_set():
            bird = random.choice(self.birds)
            try:
                answer = session.post(f"{self.url}/predict", json=bird, timeout=30)
                outcome = (answer.status_code, answer.json().get("model_version") if answer.status_code == 200 else None)
            except requests.RequestException as error:
                outcome = (type(error).__name__, None)
            with self.lock:
                self.answers[outcome] += 1

    def taken(self) -> Counter:
        """The answers so far, and a fresh count from now on."""
        with self.lock:
            answers, self.answers = self.answers, Counter()
        return answers

    def __enter__(self) -> PredictionLoad:
        self.workers = [threading.Thread(target=self.send, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *_) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=60)
