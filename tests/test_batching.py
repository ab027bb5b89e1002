"""Code: the micro-batcher shares one model call between the requests waiting at the same moment, and each
request still gets exactly its own rows' answers."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from penguin_serve.serving.batching import MicroBatcher
from penguin_serve.training.dataset import load_dataset


def rows_of(output, start, end):
    return output[start:end]


class RecordingModel:
    def __init__(self, fail_first: bool = False):
        self.calls: list[int] = []
        self.fail_first = fail_first

    def __call__(self, rows):
        self.calls.append(len(rows))
        if self.fail_first and len(self.calls) == 1:
            raise RuntimeError("model failed")
        return rows * 10


def test_concurrent_submissions_share_one_call_and_get_their_own_rows():
    model = RecordingModel()
    batcher = MicroBatcher(model, rows_of)

    async def main():
        requests_rows = [np.full((size, 2), index, dtype=np.float32) for index, size in enumerate([1, 3, 1, 5])]
        results = await asyncio.gather(*(batcher.submit(rows) for rows in requests_rows))
        return requests_rows, results

    requests_rows, results = asyncio.run(main())
    assert model.calls == [10]
    for rows, result in zip(requests_rows, results):
        np.testing.assert_array_equal(result, rows * 10)


def test_a_lone_request_is_not_held_back():
    model = RecordingModel()
    batcher = MicroBatcher(model, rows_of)

    async def main():
        first = await batcher.submit(np.ones((1, 2)))
        second = await batcher.submit(np.ones((2, 2)))
        return first, second

    first, second = asyncio.run(main())
    assert model.calls == [1, 2] and len(first) == 1 and len(second) == 2


def test_a_failing_model_call_fails_its_requests_and_the_next_call_works():
    model = RecordingModel(fail_first=True)
    batcher = MicroBatcher(model, rows_of)

    async def main():
        failed = await asyncio.gather(batcher.submit(np.ones((1, 2))), batcher.submit(np.ones((1, 2))), return_exceptions=True)
        return failed, await batcher.submit(np.ones((1, 2)))

    failed, after = asyncio.run(main())
    assert [type(error) for error in failed] == [RuntimeError, RuntimeError]
    np.testing.assert_array_equal(after, [[10, 10]])


def test_a_cancelled_request_does_not_disturb_the_others():
    model = RecordingModel()
    batcher = MicroBatcher(model, rows_of)

    async def main():
        cancelled = asyncio.ensure_future(batcher.submit(np.ones((1, 2))))
        kept = asyncio.ensure_future(batcher.submit(np.full((1, 2), 2.0)))
        await asyncio.sleep(0)  # both have submitted; the flush is scheduled behind them
        cancelled.cancel()
        return await kept

    np.testing.assert_array_equal(asyncio.run(main()), [[20, 20]])


@pytest.fixture(scope="module")
def dataset_records():
    return [p.model_dump(mode="json") for p in load_dataset().penguins]


def test_concurrent_http_requests_each_get_their_own_answer(served, dataset_records):
    # Through a real server with 2 workers: 342 different birds sent from 32 threads at once must get the
    # same answers as when sent one by one.
    def predict(record):
        response = requests.post(served.url + "/predict", json=record, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["probabilities"]

    one_by_one = [predict(record) for record in dataset_records]
    with ThreadPoolExecutor(32) as pool:
        concurrent = list(pool.map(predict, dataset_records))
    assert concurrent == one_by_one
