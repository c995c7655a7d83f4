# syntax=docker/dockerfile:1
# AutoSRE's image: the engine and the web UI, with ansible-core and the whitelisted playbooks.
# One image, one process per container (docker-compose.yml runs it three ways):
#
#   docker build -t autosre .
#   docker run --rm autosre --help
#   docker run ... autosre db upgrade                      # once per new version: migrations
#   docker run ... autosre run                             # the engine (the default command)
#   docker run ... autosre web --host 0.0.0.0 --port 8000  # the web UI
#
# Settings come from the environment only (README "Configuration"): AUTOSRE_DATABASE_URL,
# AUTOSRE_PROMETHEUS_URL, AUTOSRE_INVENTORY, AUTOSRE_POLICY, ... Secrets (AUTOSRE_SECRET_KEY,
# AUTOSRE_ALERTS_TOKEN or AUTOSRE_ALERTS_TOKEN_FILE, model keys, a PGPASSFILE) are given at
# run time, never built in. Logs go to the container's output.
#
# tests/deploy/test_image.py lints this file and runs the build stage's RUN steps for real.

# The build stage: a virtualenv with the pinned dependencies, then the project itself.
FROM python:3.11-slim-bookworm AS build
ENV VIRTUAL_ENV=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The pinned dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY webui ./webui
COPY autosre ./autosre
# --no-deps: everything it needs is pinned above; nothing unpinned slips in here.
RUN "$VIRTUAL_ENV/bin/pip" install --no-cache-dir --no-deps . \
    && "$VIRTUAL_ENV/bin/autosre" --version

# The runtime stage: the virtualenv, the playbooks and policies, an unprivileged user.
FROM python:3.11-slim-bookworm
# openssh-client: Ansible reaches the fleet over SSH. tini: PID 1, which forwards SIGTERM
# (a run in flight may finish, AUTOSRE_SHUTDOWN_GRACE) and reaps what ansible-runner's
# children leave behind. Debian's versions are not pinned: bookworm's security updates
# replace them, and a pin would break the build on each.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client tini \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid, so volumes made for it (SSH keys, secrets) can be owned by it in advance.
RUN groupadd --system --gid 10001 autosre \
    && useradd --system --uid 10001 --gid autosre --create-home --home-dir /home/autosre \
        --shell /usr/sbin/nologin autosre \
    && install -d -o autosre -g autosre -m 0700 /home/autosre/.ssh \
    && install -d -o autosre -g autosre -m 0750 /var/lib/autosre /var/lib/autosre/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/autosre
# Owned by root and read-only to the engine: it runs these, it never changes them.
COPY playbooks ./playbooks
COPY policies ./policies
COPY inventory ./inventory
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/autosre-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AUTOSRE_DATA_DIR=/var/lib/autosre/data \
    AUTOSRE_PLAYBOOK_DIR=/opt/autosre/playbooks \
    AUTOSRE_POLICY=/opt/autosre/policies/default.yaml \
    AUTOSRE_INVENTORY=/opt/autosre/inventory/localhost.yml
# Numeric, so a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# `autosre web`: /healthz answers 200 (the store answers). `autosre run`: the engine's last
# tick, as stored, is no older than three intervals. One-shot commands: always healthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["autosre-entrypoint", "healthcheck"]
ENTRYPOINT ["tini", "--", "autosre-entrypoint"]
CMD ["run"]
