"""The bulk scoring job's settings (penguin_serve/jobs/score.py), each an environment variable declared once
(variable, default, type, meaning); docs/configuration.md lists them (scripts/dev/configuration.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..configuration import from_env, setting


@dataclass(frozen=True)
class Job:
    input: str | None = setting("SCORE_INPUT", "the scoring job's input: a CSV file, a folder, or gs://BUCKET/PREFIX")
    output: str | None = setting("SCORE_OUTPUT", "the scoring job's output: a folder or gs://BUCKET/PREFIX")
    key_column: str | None = setting(
        "SCORE_KEY_COLUMN", "the input column that identifies a row in the output; unset: its row number in its file"
    )
    task_index: int = setting("CLOUD_RUN_TASK_INDEX", "this task's index (set by Cloud Run Jobs)", 0)
    task_count: int = setting("CLOUD_RUN_TASK_COUNT", "the job's number of tasks (set by Cloud Run Jobs)", 1)
    bento_path: str | None = setting(
        "BENTO_PATH", "where the bento lies in its image (set by BentoML's image): the job's model is the one it packs"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Job:
        return from_env(cls, env)
