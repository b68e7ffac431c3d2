"""Scene plans: the step between a prompt and pixels (boxes over time)."""
