# syntax=docker/dockerfile:1
# Worker and seed tool in one image. Build from the repository root: docker build -t pg-batch .

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# scripts run later: `prepare` (the build) needs the sources, and the embedded PostgreSQL
# binaries, the only dependency with an install script, are not wanted in the image
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json .graphile-worker.config.ts ./
COPY src ./src
COPY seed ./seed
COPY tasks ./tasks
COPY workflows ./workflows
COPY sql ./sql
RUN npm run build \
 && npm prune --omit=dev --omit=optional

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --from=build --chown=root:root /app/sql ./sql
# the image's user owns nothing it runs: the root filesystem can be mounted read-only
USER node
# The worker; `graphile-worker` directly rather than through npx, which does not pass SIGTERM
# on to it. The seed tool runs in the same image: node dist/seed/cli.js <command>
CMD ["graphile-worker", "-C", "dist/.graphile-worker.config.js"]
