"""The usual FastAPI service done right, for comparison: a numpy row and Booster.inplace_predict on one
thread, no pandas on the request path. Same model, same answers.

    MODEL_DIR=models .venv/bin/uvicorn benchmarks.numpy_app:app --port 8001
"""

import os

import numpy as np
import xgboost as xgb
from fastapi import FastAPI
from pydantic import BaseModel

from penguin_serve.contract import ISLANDS, SPECIES

booster = xgb.Booster(model_file=os.path.join(os.environ.get("MODEL_DIR", "models"), "booster.json"))
booster.set_param({"nthread": 1})
app = FastAPI()


class PenguinFeatures(BaseModel):
    bill_length_mm: float
    bill_depth_mm: float
    flipper_length_mm: float
    body_mass_g: float
    year: int | None = None
    sex: str | None = None
    island: str


@app.post("/predict")
async def predict(p: PenguinFeatures):
    sex = {"male": 1.0, "female": 0.0}.get((p.sex or "").lower(), np.nan)
    row = np.array([[p.bill_length_mm, p.bill_depth_mm, p.flipper_length_mm, p.body_mass_g, sex,
                     *(float(p.island == island) for island in ISLANDS)]], dtype=np.float32)
    return {"prediction": SPECIES[int(booster.inplace_predict(row).argmax())]}
