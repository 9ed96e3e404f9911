# The Python worker, built from the repository root (it needs lua/ and schema/ beside python/).
FROM python:3.11-slim
WORKDIR /src
COPY lua ./lua
COPY schema ./schema
COPY python ./python
RUN pip install --no-cache-dir ./python
CMD ["dothis", "worker", "--queue", "dothis", "dothis.examples"]
