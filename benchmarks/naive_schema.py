"""The request model of the usual FastAPI penguin service, shared by the two benchmark comparison apps."""

import os

from pydantic import BaseModel

MODEL_DIR = os.environ.get("MODEL_DIR", "models")


class PenguinFeatures(BaseModel):
    bill_length_mm: float
    bill_depth_mm: float
    flipper_length_mm: float
    body_mass_g: float
    year: int | None = None
    sex: str | None = None
    island: str
