#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, builds, runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
# setfacl/getfacl: tbot sets POSIX ACLs for a destination's readers
command -v setfacl >/dev/null 2>&1 || need+=(acl)
# zsh: the zsh completion script is parsed and run (test/integration/completion.test.ts)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
# kubectl: deploy/kubernetes is rendered with `kubectl kustomize` (test/integration/kustomize.test.ts)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
# podman, runc, mmdebstrap: the container images are built and run (test/integration/container.test.ts)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
# PostgreSQL 15 (Debian's): the PostgreSQL backend's tests run their own server from
# /usr/lib/postgresql/15/bin (test/helpers/postgres.ts), not the service the package sets up
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
# python3-grpcio, python3-grpc-tools: an independent (C-core) gRPC client of the SPIFFE Workload API
/usr/bin/python3 -c "import grpc, grpc_tools" >/dev/null 2>&1 || need+=(python3-grpcio python3-grpc-tools)
# python3-jwt (PyJWT): an independent verifier of JWT-SVIDs against the served discovery document and JWKS
/usr/bin/python3 -c "import jwt" >/dev/null 2>&1 || need+=(python3-jwt)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
rm -rf dist
npx tsc -p .
chmod +x dist/src/cli/*.js

# unit tests and integration tests (real mwi, tctl, tbot, sshd, curl, openssl) in one run
node --test --test-concurrency=2 "$@" dist/test/
