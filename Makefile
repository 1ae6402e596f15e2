# The two commands a newcomer needs: `make demo` and `make test`.
# Both install whatever is missing first (scripts/install-deps.sh).

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
KERNEL ?= 6.12

.PHONY: deps demo test test-tree lint bench clean

deps:
	@./scripts/install-deps.sh

## The tutorial, end to end, in a real $(KERNEL) kernel.
demo: deps
	kfunc run examples/hello --kernel $(KERNEL)

## The whole suite: lint, unit, host BPF, and VM tests.
test: deps lint
	pytest

## A kernel tree built from Debian's linux-source-6.12 (tinyconfig + what kfunc
## needs) into kfunc's cache, once, then the tests that use it (`make test`
## skips them where the tree is not built).
test-tree: deps
	python tests/kernel_tree.py
	KFUNC_REQUIRE_TREE=1 pytest tests/test_local_kernels.py -k tree

lint: deps
	ruff check src tests bench
	ruff format --check src tests bench
	mypy

bench: deps
	python bench/run_hello.py
	python bench/ringbuf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
