# ipv6-migration-operator. `make test` and `make demo` work on a fresh machine: they install the npm packages,
# Node 24 when the machine's node is older than 22.19, and the Go-built control plane (cached outside the repo).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

NODE_VERSION := 24.21.0
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ipv6-migration-operator
export IPV6MIG_CACHE_DIR := $(CACHE_DIR)
NODE_PREFIX := $(CACHE_DIR)/node-$(NODE_VERSION)

# client-node 2.x needs undici 8, which needs Node >= 22.19.
SYSTEM_NODE_OK := $(shell node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null && echo yes)
ifeq ($(SYSTEM_NODE_OK),yes)
NODE_BIN :=
else
NODE_BIN := $(NODE_PREFIX)/node_modules/.bin/node
export PATH := $(NODE_PREFIX)/node_modules/.bin:$(PATH)
endif

IMG ?= ipv6-migration-operator:dev
KUBECTL ?= kubectl
UNDEPLOY_TIMEOUT ?= 10m

.PHONY: build lint fmt test test-unit test-integration test-faults testenv demo run bench bench-dataplane docker-build deploy undeploy docs node clean

node: $(NODE_BIN)

$(NODE_PREFIX)/node_modules/.bin/node:
	@echo "Installing Node $(NODE_VERSION) from the npm registry into $(NODE_PREFIX)"
	mkdir -p $(NODE_PREFIX)
	npm install --prefix $(NODE_PREFIX) --no-save --no-package-lock --no-audit --no-fund node@$(NODE_VERSION) >/dev/null
	$@ --version

node_modules/.installed: package.json package-lock.json | $(NODE_BIN)
	npm ci --no-audit --no-fund
	touch $@

build: node_modules/.installed
	npx tsc -p tsconfig.json

lint: node_modules/.installed
	npx eslint .
	npx prettier --check .

fmt: node_modules/.installed
	npx prettier --write .

testenv:
	@testenv/build.sh >/dev/null
	@testenv/build.sh --dataplane >/dev/null

test: build lint testenv
	node dist/test/run.js

test-unit: build
	node dist/test/run.js --unit

test-integration: build testenv
	node dist/test/run.js --integration

# The full fault suite (a short version of it runs in make test).
test-faults: build testenv
	node dist/test/run.js --faults

bench: build testenv
	node dist/bench/run.js

# Traffic through a whole plan on a real data plane (kube-proxy + CoreDNS in a network namespace; needs root).
bench-dataplane: build testenv
	node dist/bench/dataplane.js

demo: build testenv
	node dist/src/cli/main.js demo $(DEMO_ARGS)

run: build
	node dist/src/cli/main.js operator $(RUN_ARGS)

docker-build:
	docker build -t $(IMG) .

deploy:
	$(KUBECTL) apply -k config/default

# Plans first, while the operator still runs to carry out their deletionPolicy and drop their finalizers; then
# the operator and, last, the CRD (deleting the CRD first would wait for ever on plans nobody finalizes).
undeploy:
	if $(KUBECTL) get crd migrationplans.ipv6migration.io >/dev/null 2>&1; then \
	  $(KUBECTL) delete migrationplans.ipv6migration.io --all --wait --timeout=$(UNDEPLOY_TIMEOUT); fi
	$(KUBECTL) delete -k config/default --ignore-not-found

docs: build
	node dist/test/apidoc.js --write

clean:
	rm -rf dist node_modules/.installed
