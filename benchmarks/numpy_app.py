"""The usual FastAPI service done right, for comparison: a numpy row and Booster.inplace_predict on one
thread, no pandas on the request path. Same model, same answers.

    MODEL_DIR=models .venv/bin/uvicorn benchmarks.numpy_app:app --port 8001
"""

import os

import numpy as np
import xgboost as xgb
from fastapi import FastAPI

from benchmarks.naive_schema import MODEL_DIR, PenguinFeatures
from penguin_serve.contract import ISLANDS, SPECIES

booster = xgb.Booster(model_file=os.path.join(MODEL_DIR, "booster.json"))
booster.set_param({"nthread": 1})
app = FastAPI()


@app.post("/predict")
async def predict(p: PenguinFeatures):
    sex = {"male": 1.0, "female": 0.0}.get((p.sex or "").lower(), np.nan)
    row = np.array(
        [
            [
                p.bill_length_mm,
                p.bill_depth_mm,
                p.flipper_length_mm,
                p.body_mass_g,
                sex,
                *(float(p.island == island) for island in ISLANDS),
            ]
        ],
        dtype=np.float32,
    )
    return {"prediction": SPECIES[int(booster.inplace_predict(row).argmax())]}
