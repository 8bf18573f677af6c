# gemma-ts: `gemma serve` (OpenAI-compatible API) in a container.
#
#   docker build -t gemma-ts .
#   docker run -p 8080:8080 -v /path/to/checkpoint:/models:ro gemma-ts        # a model directory or
#   docker run -p 8080:8080 gemma-ts --model demo --host 0.0.0.0               # the bundled demo model
#
# Arguments after the image name replace the default `--model /models --host 0.0.0.0 --port 8080`.
# The healthcheck asks http://127.0.0.1:8080/health: keep the port at 8080 inside the container.
ARG NODE_VERSION=24

# Stage 1: build the package (TypeScript and the WebAssembly kernels) and pack it as npm would.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts off: the dev dependencies' install scripts (llama.cpp, browsers) are not needed to build.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm pack --ignore-scripts --pack-destination /tmp \
 && mv /tmp/gemma-ts-*.tgz /tmp/gemma-ts.tgz

# Stage 2: the packed library and its production dependencies only, run as a non-root user.
FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /tmp/gemma-ts.tgz /tmp/gemma-ts.tgz
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund --no-package-lock /tmp/gemma-ts.tgz \
 && rm /tmp/gemma-ts.tgz \
 && npm cache clean --force \
 && ln -s /app/node_modules/.bin/gemma /usr/local/bin/gemma \
 && mkdir -p /models && chown node:node /models
# The model directory (config.json + safetensors, or a .gguf file inside it): mount it read-only.
VOLUME ["/models"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["gemma", "serve"]
CMD ["--model", "/models", "--host", "0.0.0.0", "--port", "8080"]
