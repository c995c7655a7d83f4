"""AutoSRE: a policy-constrained remediation engine for VM fleets.

The package reads like the pipeline: ``metrics`` -> ``evaluate`` -> ``plan`` ->
``policy`` -> ``execute`` -> ``verify`` -> ``record``, wired by ``loop``.
"""

__version__ = "0.1.0"
