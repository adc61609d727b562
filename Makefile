# lbkv build. `make` builds everything from a fresh clone; `make test`, `make demo`,
# `make experiments [FULL=1]`, `make profile`, `make clean`.
SHELL := /bin/bash
NODE_STAMP := node_modules/.install-stamp
GEN := generated/kv.ts
TS_SOURCES := $(shell find btree lib bin test experiments -name '*.ts' 2>/dev/null)

.PHONY: all build deps gen lint test test-long demo experiments profile bench clean gnuplot torture

all: build

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_STAMP)

$(GEN): protos/kv.proto buf.gen.yaml $(NODE_STAMP)
	npx buf generate
	@touch $@

gen: $(GEN)

lint: $(NODE_STAMP)
	npx buf lint

# The list of sources, rewritten only when it changes (a file added, removed or renamed): a
# source removed or renamed leaves every other one older than the stamp, and would rebuild nothing.
TS_LIST := dist/.ts-sources
$(shell mkdir -p dist && echo '$(sort $(TS_SOURCES))' | cmp -s - $(TS_LIST) || echo '$(sort $(TS_SOURCES))' > $(TS_LIST))

# Built into an emptied dist/: tsc never removes the output of a source that is gone, and
# scripts/run-tests.mjs runs every dist/test/**/*.test.js, so a renamed test ran twice, its old
# copy against the new code.
dist/.build-stamp: $(GEN) $(TS_SOURCES) $(TS_LIST) tsconfig.json $(NODE_STAMP)
	find dist -mindepth 1 -maxdepth 1 ! -name .ts-sources -exec rm -rf {} +
	npx tsc -p tsconfig.json
	@touch $@

lbserver lbclient: scripts/launcher.sh
	@cp scripts/launcher.sh $@ && chmod +x $@

build: dist/.build-stamp lbserver lbclient

test: lint build
	node scripts/run-tests.mjs

demo: build
	node dist/bin/demo.js

# apt-get as root, or through sudo without a password prompt.
gnuplot:
	@command -v gnuplot >/dev/null || { s=$$([ "$$(id -u)" = 0 ] || echo 'sudo -n'); \
	  $$s apt-get update -qq && $$s env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null; }

# Without gnuplot (not installable here) the runs still measure: each writes its .gp script and
# reports the plot as not rendered (run gnuplot NAME.gp in the result directory later).
experiments: build
	@$(MAKE) --no-print-directory gnuplot || echo 'make experiments: gnuplot is missing and could not be installed (apt-get needs root or sudo); the plots will not be rendered' >&2
	node dist/experiments/run-all.js $(if $(FULL),--full,)
	node dist/experiments/summarize.js >/dev/null
	@echo "tables: experiments/results/SUMMARY.md"

profile: build
	node dist/experiments/profile.js

bench: build
	npm run bench

torture: build
	npm run torture

clean:
	rm -rf dist generated/*.ts lbserver lbclient node_modules/.install-stamp
