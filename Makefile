# The two commands of the README, and what they stand on.
GO ?= go
BIN := bin/codeset

.PHONY: run test build run-emulated bench vet fmt

# Static (CGO_ENABLED=0): the same binary is copied into sample images as the sandbox agent,
# and without cgo the agent narrows its commands' capabilities on all its threads at once.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/codeset

# The whole system on the embedded default: SQLite in ./.codeset, local sandboxes, the demo dataset.
run: build
	./$(BIN) serve

# Every test; starts the Firestore, Pub/Sub and Cloud Storage emulators (and stripe-mock) on free loopback ports.
test:
	./scripts/test.sh

# The GCP backend on the emulators, with local sandboxes.
run-emulated: build
	./scripts/run-emulated.sh

bench:
	./scripts/bench.sh

vet:
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
