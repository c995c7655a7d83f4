"""``autosre doctor``: checks, from the machine it runs on, that what the engine needs
answers (Prometheus, Ansible, the store, the policy and its playbooks, the model).

One module per check; each returns ``Finding`` values (report.py) and never raises;
run.py runs them side by side, each bounded in time.
"""

from engine.doctor.report import Finding, Outcome, Report

__all__ = ["Finding", "Outcome", "Report"]
