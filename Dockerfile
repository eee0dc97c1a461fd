# syntax=docker/dockerfile:1
# One image for every node; SERVICES picks what a container runs (README "Deploying on Kubernetes").
#   docker build -t pf2-realtime:0.1.0 .
#   docker run --rm -p 3000:3000 -e JWT_SECRET=... pf2-realtime:0.1.0    # all services, one process

# --- build: compile TypeScript with the dev dependencies, then drop them ---
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json moleculer.config.ts ./
COPY lib ./lib
COPY mixins ./mixins
COPY protocols ./protocols
COPY services ./services
COPY stores ./stores
COPY types ./types
RUN npm run build && npm prune --omit=dev

# --- runtime: compiled code and production dependencies, as the unprivileged `node` user ---
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# DATA_DIR of the embedded-default stores (./data); Kubernetes mounts an emptyDir here.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000
# SIGTERM reaches the runner directly (no shell in between), which stops the broker gracefully.
CMD ["node", "node_modules/.bin/moleculer-runner", "--config", "dist/moleculer.config.js", "dist/services"]
