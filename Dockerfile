# wasm-serve container image.
#
#   docker build -t wasm-serve .
#   docker run -p 8080:8080 -v "$PWD/dist:/srv:ro" wasm-serve
#
# Three stages so that dev dependencies (TypeScript, tap, @ffmpeg/core's 32 MB wasm, playwright-core)
# never reach the runtime image: `build` compiles, `deps` installs production dependencies only,
# the final stage copies the two results onto a clean base.
ARG NODE_IMAGE=node:24-slim

# ---- build: full install from the lockfile, then `prepare` (tsc + demo wasm into public/) ----
FROM ${NODE_IMAGE} AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
# Lockfile first and sources later, so that the dependency layer is reused while only sources change.
# --ignore-scripts because the root's `prepare` needs the sources that are not copied yet;
# `npm rebuild` then runs any dependency install scripts.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild
COPY . .
RUN mkdir -p public && npm run prepare

# ---- deps: production dependencies only, nothing executed from them ----
FROM ${NODE_IMAGE} AS deps
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ----
FROM ${NODE_IMAGE}
# OCI annotations (github.com/opencontainers/image-spec, annotations.md). VERSION defaults to package.json's
# (test/container.test.ts compares); a release build passes --build-arg VERSION=…, REVISION=<commit> and
# SOURCE=<the repository's URL> (package.json names no repository, so there is no default to copy).
ARG VERSION=0.1.0
ARG REVISION=
ARG SOURCE=
LABEL org.opencontainers.image.title="wasm-serve" \
      org.opencontainers.image.description="A static file server on Fastify tuned to deliver WebAssembly fast and correctly" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
# No directory listings in the image: a deployed site publishes only what it links (docs/delivery.md §1).
# WASM_SERVE_ADDRESS_FILE: the server writes the URL it bound there, whichever way the port was set
# (--port, PORT, WASM_SERVE_PORT, the config file), and the HEALTHCHECK reads it (src/healthcheck.ts).
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    WASM_SERVE_ADDRESS_FILE=/tmp/wasm-serve.address \
    WASM_SERVE_LISTING=false
WORKDIR /app
# Application files stay owned by root: the `node` user can read them, not change them.
# package.json is needed at run time ("type": "module", --version); config.example.json documents the keys.
COPY package.json config.example.jso[n] ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/public ./public
# `wasm-serve` on PATH, so that derived images can `RUN wasm-serve compress /srv`.
# /srv is owned by `node` so that compress can write siblings next to files copied with --chown=node:node.
RUN printf '#!/bin/sh\nexec node --max-semi-space-size=1 /app/dist/cli.js "$@"\n' > /usr/local/bin/wasm-serve \
 && chmod 755 /usr/local/bin/wasm-serve \
 && mkdir -p /srv && chown node:node /srv
USER node
EXPOSE 8080
# No curl in the slim image: node. The URL comes from WASM_SERVE_ADDRESS_FILE (else PORT); /healthz answers
# 503 with the reason while /srv is missing or empty (a forgotten -v mount), which fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "/app/dist/healthcheck.js"]
# The CLI closes the listener, lets in-flight responses finish and exits 0 on SIGTERM.
# node runs as PID 1 directly (no shell in between), so the signal reaches it.
STOPSIGNAL SIGTERM
# --max-semi-space-size=1: V8's young generation otherwise grows by 25-40 MB under load; capped (no
# measurable cost in throughput), RSS stays near memoryBudget + ~100 MB (docs/memory.md).
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/cli.js"]
CMD ["/srv"]
