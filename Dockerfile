# ConvScope, built with the README's own install step (`make install`) and started like `make run`.
# The built-in models' weights are in the repository: no data download, no GPU.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /convscope
COPY . .
# torch==2.13.0 is pinned in pyproject.toml. To get its CPU-only wheel instead of the default
# build, pass your CPU wheel index: docker build --build-arg PIP_EXTRA_INDEX_URL=<index> .
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN make install

EXPOSE 8000
CMD ["make", "run", "HOST=0.0.0.0", "PORT=8000"]
