# ConvScope as the README's "Install it anywhere" installs it: the wheel built from this folder, then
# `convscope serve`. The built-in models' weights are in the wheel: no data download, no GPU.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
# torch==2.13.0 is pinned in pyproject.toml. To get its CPU-only wheel instead of the default
# build, pass your CPU wheel index: docker build --build-arg PIP_EXTRA_INDEX_URL=<index> .
ARG PIP_EXTRA_INDEX_URL=""
COPY --from=wheel /dist /dist
RUN PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} pip install --no-cache-dir /dist/*.whl && rm -rf /dist \
    && useradd --create-home --uid 10001 convscope
USER convscope
WORKDIR /home/convscope
# The run database (convscope.db): mount a volume here to keep the training runs across containers.
ENV CONVSCOPE_DATA_DIR=/home/convscope/data
RUN mkdir -p /home/convscope/data
VOLUME /home/convscope/data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]
CMD ["convscope", "serve", "--host", "0.0.0.0", "--port", "8000"]
