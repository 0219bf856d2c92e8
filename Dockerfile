# The image the Kubernetes bundle runs (`impromptu-ops install --scheduler kubernetes`).
#   docker build -t impromptu-ops:0.1.0 .      (from the repository root)
# then `install --image impromptu-ops:0.1.0`. The base image is pinned to an exact tag:
# bump it deliberately (and rebuild) rather than picking up whatever "3" or "slim" means
# today.

FROM python:3.12.8-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the package needs: the checkout's code, metadata and policies.
COPY pyproject.toml README.md ./
COPY ops ./ops
COPY policies ./policies
RUN python -m venv /opt/impromptu-ops \
 && /opt/impromptu-ops/bin/pip install /src \
 && /opt/impromptu-ops/bin/impromptu-ops --version

FROM python:3.12.8-slim-bookworm
# The uid/gid the CronJobs run as (runAsUser/runAsGroup/fsGroup 10001).
RUN groupadd --system --gid 10001 impromptu \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/impromptu \
      --no-create-home --shell /usr/sbin/nologin impromptu
COPY --from=build /opt/impromptu-ops /opt/impromptu-ops
# Read-only root filesystem in the pod: no bytecode writes; state and credentials are
# mounted volumes (the state PersistentVolumeClaim, memory emptyDirs).
ENV PATH=/opt/impromptu-ops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMPROMPTU_PATHS_STATE_DIR=/var/lib/impromptu \
    IMPROMPTU_PATHS_DATA_DIR=/var/lib/impromptu/data \
    IMPROMPTU_PATHS_CONFIG_DIR=/etc/impromptu-ops
USER 10001:10001
WORKDIR /var/lib/impromptu
ENTRYPOINT ["impromptu-ops"]
CMD ["--help"]
