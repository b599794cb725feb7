# syntax=docker/dockerfile:1
# The worker and the seed tool in one image. Build from the repository root:
#   docker build -t pg-batch .
# test/system/image.test.ts runs these steps outside Docker and starts the result.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# No install scripts: the only dependency with one ships the embedded PostgreSQL binaries of
# `npm start`, which the image does not need. The build runs below, once the sources are in.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json .graphile-worker.config.ts ./
COPY app ./app
COPY cli ./cli
COPY dashboard ./dashboard
COPY jobs ./jobs
COPY src ./src
COPY seed ./seed
COPY tasks ./tasks
COPY workflows ./workflows
COPY bench ./bench
COPY sql ./sql
# not autoscaler/: a development tool (it reads manifests with yaml, a devDependency)
# compile, then keep only what runs: production dependencies, without the optional binaries
RUN npm run build && npm prune --omit=dev --omit=optional

FROM node:24-bookworm-slim
# tini as PID 1 (ENTRYPOINT below): see the exit statuses at the end
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/sql ./sql
# what `graphile-worker` finds by itself in its working directory: the compiled configuration
COPY graphile.config.js ./
# the image's files belong to root; the process runs as the unprivileged user of node's image,
# which owns nothing it runs: the root filesystem can be mounted read-only
USER node
EXPOSE 9464 8080
# The worker: graphile-worker itself rather than through npx, which does not pass SIGTERM on to
# it; it loads graphile.config.js. The seed tool is in the same image: node dist/seed/cli.js <command>
# The dashboard too, on DASHBOARD_PORT (8080): node dist/app/dashboard.js (its pages' scripts
# bundled in dist/dashboard/scripts, uPlot in node_modules)
#
# PID 1 is tini, which passes signals on and exits with its child's status. A process that is
# PID 1 itself ignores a signal it has no handler for: graphile-worker, which re-raises SIGTERM
# once it has shut down gracefully, would then exit 0, and an evicted Job's pod would be marked
# Complete. The manifests name tini in their commands too, as a pod's command replaces the
# ENTRYPOINT. The exit statuses the manifests rely on (podFailurePolicy, backoffLimit):
#   0    done: a --once worker found no job due; a command succeeded
#   1    the work failed (a command), or an unexpected error
#   2    bad arguments or configuration: a new pod of the same spec fails the same way
#   75   the database went away under the worker's job pool; it released its jobs: start another
#   134  V8 ran out of heap (NODE_OPTIONS' --max-old-space-size)
#   137  SIGKILL: the grace period ran out, or an OOM kill at the memory limit
#   143  SIGTERM: stopped on request, its chunks handed back
ENTRYPOINT ["tini", "--"]
CMD ["graphile-worker"]
