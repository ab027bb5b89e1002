"""The usual penguin service, kept as the benchmark's reference: FastAPI, a pandas DataFrame and one-hot
encoding built per request, XGBClassifier.predict with XGBoost's default threading. The model (our exported
booster, so both services answer the same) is loaded once at start-up.

    MODEL_DIR=models .venv/bin/uvicorn benchmarks.reference_app:app --port 8000
"""

import os

import pandas as pd
import xgboost as xgb
from fastapi import FastAPI
from pydantic import BaseModel

from penguin_serve.contract import FEATURE_NAMES, SPECIES

MODEL_DIR = os.environ.get("MODEL_DIR", "models")

model = xgb.XGBClassifier()
model.load_model(os.path.join(MODEL_DIR, "booster.json"))
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
def predict(features: PenguinFeatures):
    frame = pd.DataFrame([features.model_dump()])
    frame["sex_male"] = (frame["sex"].str.lower() == "male").astype(float).where(frame["sex"].notna())
    encoded = pd.get_dummies(frame, columns=["island"], prefix="island", dtype=float)
    encoded = encoded.reindex(columns=list(FEATURE_NAMES), fill_value=0.0)
    label = int(model.predict(encoded)[0])
    return {"prediction": SPECIES[label]}
