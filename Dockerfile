# The smsfold image: `smsfold gateway` (default) or `smsfold worker`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --home-dir /app smsfold \
    && mkdir -p /var/lib/smsfold/spool && chown -R smsfold /var/lib/smsfold
WORKDIR /app

COPY . .
RUN pip install . && rm -rf build *.egg-info

# The gateway's spool (requests Kafka did not acknowledge in time) must outlive the container: mount a volume.
ENV SMSFOLD_GATEWAY__SPOOL_DIR=/var/lib/smsfold/spool
VOLUME ["/var/lib/smsfold"]

USER smsfold
EXPOSE 8080 6066
ENTRYPOINT ["smsfold"]
CMD ["gateway"]
