# The two commands a newcomer needs: `make demo` and `make test`.
# Both install whatever is missing first (scripts/install-deps.sh).

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
KERNEL ?= 6.12

.PHONY: deps demo test lint bench clean

deps:
	@./scripts/install-deps.sh

## The tutorial, end to end, in a real $(KERNEL) kernel.
demo: deps
	kfunc run examples/hello --kernel $(KERNEL)

## The whole suite: lint, unit, host BPF, and VM tests.
test: deps lint
	pytest

lint: deps
	ruff check src tests bench
	ruff format --check src tests bench
	mypy

bench: deps
	python bench/run_hello.py
	python bench/ringbuf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
