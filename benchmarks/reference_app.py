"""The usual penguin service, kept as the benchmark's reference: FastAPI, a pandas DataFrame and one-hot
encoding built per request, XGBClassifier.predict with XGBoost's default threading. The model (our exported
booster, so both services answer the same) is loaded once at start-up.

    MODEL_DIR=models .venv/bin/uvicorn benchmarks.reference_app:app --port 8000
"""

import os

import pandas as pd
import xgboost as xgb
from fastapi import FastAPI

from benchmarks.naive_schema import MODEL_DIR, PenguinFeatures
from penguin_serve.contract import FEATURE_NAMES, SPECIES

model = xgb.XGBClassifier()
model.load_model(os.path.join(MODEL_DIR, "booster.json"))
app = FastAPI()


@app.post("/predict")
def predict(features: PenguinFeatures):
    frame = pd.DataFrame([features.model_dump()])
    frame["sex_male"] = (frame["sex"].str.lower() == "male").astype(float).where(frame["sex"].notna())
    encoded = pd.get_dummies(frame, columns=["island"], prefix="island", dtype=float)
    encoded = encoded.reindex(columns=list(FEATURE_NAMES), fill_value=0.0)
    label = int(model.predict(encoded)[0])
    return {"prediction": SPECIES[label]}
