"""A lab of SSH hosts on one machine, for tests, the demo and benchmarks.

``Lab(dir, hosts=4)`` brings up web1..webN, each with its own mount namespace, cgroup,
nginx and sshd, scraped by a real Prometheus through a small exporter that writes
node_exporter's metric names, and writes the inventory that reaches them over SSH.
``python -m tests.lab up|down|status`` drives it from a shell (``make lab-up``).
"""

from tests.lab.errors import LabError
from tests.lab.host import LabHost
from tests.lab.lab import Lab, preflight

__all__ = ["Lab", "LabError", "LabHost", "preflight"]
