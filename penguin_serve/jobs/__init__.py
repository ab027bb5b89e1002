"""Jobs over the same model and contract as the service: bulk scoring (score.py), run as Cloud Run Job tasks."""
