"""SQL console: parse and check each statement against the user's grants, run it under the engine's guards."""
