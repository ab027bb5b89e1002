"""Cloud Run: deploy, canary and its gate, rollback, the scoring job, monitoring; and their settings."""
