"""Training-only code: the dataset and evaluation (pandas and scikit-learn, not in the serving image)."""
