"""The decision eval: a corpus of written or captured situations, each with the decision it
calls for, run through a planner and the policy gate exactly as the engine runs them (no
action, no store), and scored (docs/eval.md)."""
