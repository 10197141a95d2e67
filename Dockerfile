# Multi-stage: compile with dev dependencies, then ship node, the compiled app and production dependencies only.
# The build and deps stages run on the builder's own platform (--platform=$BUILDPLATFORM): their output is
# JavaScript and pure-JS packages, the same for every target, so `make docker-buildx` emulates only the last stage.
FROM --platform=$BUILDPLATFORM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The demo and the test harness it runs (a local etcd + kube-apiserver) stay out of the image: the CLI loads them
# only for `ipv6-migrate demo`, which says so when they are absent.
RUN npx tsc -p tsconfig.build.json && rm -rf dist/src/testenv dist/src/cli/demo.js

FROM --platform=$BUILDPLATFORM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY crds ./crds
USER 65532:65532
ENV NODE_ENV=production
ENTRYPOINT ["/nodejs/bin/node", "dist/src/cli/main.js"]
CMD ["operator", "--leader-elect"]
