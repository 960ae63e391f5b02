# Parkinglot. `make run` starts the native server on the built-in sample
# config; `make test` runs every test but the large load runs on moto, which
# `make test-load` runs (CI runs both).
GO      ?= go
BIN     := bin/parkinglot
CONFIG  ?=
PKGS    := ./...

.PHONY: build run local-aws test test-go test-load vet fmt-check bench fuzz clean lambdas wasm test-web

build:
	$(GO) build -o $(BIN) ./cmd/parkinglot

run: build
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

# The serverless stack locally: the synthesized template deployed into
# moto's CloudFormation, and the Lambda handlers behind a local gateway over
# the table and queues it created (scripts/local-aws.sh).
local-aws: build synth
	BIN=$(BIN) CDK_OUT=infra/cdk/cdk.out scripts/local-aws.sh

# Everything but the large load runs: the root module under the race
# detector with -short (fuzz targets run their seed corpora), the Lambda
# zips, and the CDK app's tests. -short skips only the load runs of
# 2,000 tasks on moto (tests/aws and tests/lambda TestLoad), each several
# minutes of moto's CPU alone.
test: fmt-check vet test-go test-web lambdas test-cdk

test-go:
	$(GO) test -race -short -count=1 -timeout 25m $(PKGS)

# The web runtime (web/, cmd/parkinglot-wasm): the scheduler as
# WebAssembly, assembled into dist/web with Go's wasm_exec.js and the ES
# module, worker, declarations and demo page, ready to serve as it is.
# test-web runs the JavaScript API's tests in Node against that build; the
# headless Chromium test (tests/web) builds its own and runs in test-go.
WEB_DIR := dist/web
wasm:
	@mkdir -p $(WEB_DIR)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o $(WEB_DIR)/parkinglot.wasm ./cmd/parkinglot-wasm
	cp "$$($(GO) env GOROOT)/lib/wasm/wasm_exec.js" web/*.js web/*.d.ts web/*.html web/package.json $(WEB_DIR)/

test-web: wasm
	node --test web/test/

# The large load runs on moto, one package at a time so that their moto
# servers do not starve each other, then the three-server run of 10,000
# tasks on one PostgreSQL (make test runs 1,500): each run is bounded by its
# task count and a timeout that a machine three times slower still meets,
# and reports its rate rather than requiring one.
LOAD_PKGS := ./tests/aws ./tests/lambda
test-load:
	$(GO) test -race -count=1 -p 1 -timeout 45m -run '^TestLoad(Pull)?$$' -v $(LOAD_PKGS)
	$(GO) test -race -count=1 -timeout 30m -run '^TestMultiServer$$' -v ./tests/postgres

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Benchmarks (reported, not asserted): see docs/benchmarks.md.
BENCHTIME ?= 2s
COUNT     ?= 5
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(COUNT) $(PKGS)

# The peer benchmark (docs/benchmarks.md, "Side by side with the peers"):
# asynq on Redis, River on PostgreSQL and Parkinglot's server, one workload,
# medians of 3 interleaved runs. bench/peers is a module of its own, so the
# peers never enter the product's build; not part of `make test`.
PEERS_ARGS ?=
.PHONY: bench-peers
bench-peers:
	bench/peers/run.sh $(PEERS_ARGS)

# Run each fuzz target for FUZZTIME (default 10s).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The four Lambda functions as dist/lambda/NAME.zip, each with its bootstrap
# at the zip's root (provided.al2023, arm64), for infra/cdk to deploy.
LAMBDAS := submit dispatch expire mailbox
lambdas:
	@mkdir -p dist/lambda
	@for fn in $(LAMBDAS); do \
	  dir=$$(mktemp -d) && \
	  GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $$dir/bootstrap ./functions/$$fn && \
	  rm -f dist/lambda/$$fn.zip && (cd $$dir && zip -q -X -9 $(CURDIR)/dist/lambda/$$fn.zip bootstrap) && \
	  rm -rf $$dir && echo "dist/lambda/$$fn.zip" || exit 1; \
	done

# The CDK app (infra/cdk, its own Go module). `make synth` writes
# infra/cdk/cdk.out/Parkinglot.template.json; `make deploy` deploys it to the
# AWS account of your credentials with the CDK CLI pinned in
# infra/cdk/package.json (see infra/cdk/README.md; not run in CI). CDK_ARGS
# passes more context to both, e.g. make synth CDK_ARGS='-c poolsInStack=30'.
POOLS        ?= infra/cdk/pools.yaml
JWT_ISSUER   ?=
JWT_AUDIENCE ?=
CDK_ARGS     ?=
CDK_CONTEXT   = -c poolsFile=$(abspath $(POOLS)) -c lambdaDir=$(CURDIR)/dist/lambda \
                -c jwtIssuer=$(or $(JWT_ISSUER),https://issuer.example.com/) -c jwtAudience=$(or $(JWT_AUDIENCE),parkinglot) \
                $(CDK_ARGS)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
# node_modules holds Go files the go tool cannot read (CDK init templates):
# a go.mod there keeps it out of infra/cdk's ./... patterns.
CDK_NODE_MODULES_APART = printf 'module ignored/node_modules\n' > node_modules/go.mod

.PHONY: synth deploy test-cdk

synth: lambdas
	cd infra/cdk && $(GO) run . $(CDK_CONTEXT)

deploy: lambdas
	@if [ -z "$(JWT_ISSUER)" ] || [ -z "$(JWT_AUDIENCE)" ]; then \
	  echo "make deploy needs JWT_ISSUER=https://... and JWT_AUDIENCE=aud1[,aud2]"; exit 2; fi
	cd infra/cdk && npm ci --ignore-scripts && $(CDK_NODE_MODULES_APART) && npx cdk deploy --require-approval broadening $(CDK_CONTEXT)

test-cdk:
	cd infra/cdk && $(GO) vet . ./stack ./parkinglot && $(GO) test -count=1 -timeout 10m . ./stack ./parkinglot

clean:
	rm -rf bin dist
