"""The job spec: YAML with positions (source), the key table (keys), the frozen model and its validation (model)."""
