# The Node producer example, built from the repository root.
FROM node:20-slim
WORKDIR /src
COPY lua ./lua
COPY schema ./schema
COPY node-client ./node-client
RUN cd node-client && npm ci --no-audit --no-fund && npm run build
COPY examples ./examples
CMD ["node", "examples/node-producer.mjs"]
