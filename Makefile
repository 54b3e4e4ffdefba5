# The two commands of the quickstart: `make run` and `make test`.
GO ?= go
BIN := bin/atelier

.PHONY: build run test test-go test-python test-readme bench fuzz fuzz-go fuzz-api vet clean

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/atelier

# Builds and starts a server on the embedded default (SQLite + local files in ./.atelier);
# ADDR=HOST:PORT listens elsewhere than 127.0.0.1:8600.
run: build
	./$(BIN) server $(if $(ADDR),--addr $(ADDR))

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# Every test: Go unit and integration tests (real SQLite, real subprocesses, the real binary)
# under the race detector, the examples (they install their requirements from PyPI), and the
# Python SDK's tests against a real server, then the README followed block by block.
test: vet test-go test-python test-readme

test-go:
	ATELIER_TEST_EXAMPLES=1 $(GO) test -race -count=1 -timeout 25m ./...

# The SDK's suite, then the real mlflow client against atelier (its fixture installs mlflow and
# scikit-learn from PyPI into a cached virtual environment the first time), then the scoring
# runtime on real score.py files (scikit-learn, inference-schema, mlflow-skinny likewise).
test-python:
	cd python && python3 -m pytest -q
	python3 -m pytest -q mlflow/tests
	python3 -m pytest -q oci/build/runtime/tests

# Every sh and python block of README.md, in order, on a fresh copy of the checkout against a
# real server (the blocks install the example's requirements, the SDK and mlflow from PyPI).
test-readme: build
	scripts/readme-test.sh

# Benchmarks of the issue goals; results go to docs/benchmarks.md by hand (see that file).
bench: build
	$(GO) run ./bench -bin $(BIN)

# A short fuzzing pass over every parser, then the REST API against its OpenAPI document
# (schemathesis on a real server; it installs itself into a cached virtual environment).
fuzz: fuzz-go fuzz-api

fuzz-go:
	$(GO) test -run '^$$' -fuzz FuzzParseFilter -fuzztime 60s .
	$(GO) test -run '^$$' -fuzz FuzzReadZip -fuzztime 30s ./archive/
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./series/
	$(GO) test -run '^$$' -fuzz FuzzMetricBatch -fuzztime 30s ./api/

fuzz-api:
	GO=$(GO) scripts/fuzz-api.sh

clean:
	rm -rf bin
