# The two commands a newcomer needs: `make demo` and `make test`.
# Both install whatever is missing first (scripts/install-deps.sh).

VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
KERNEL ?= 6.12

.PHONY: deps demo test test-tree lint docs bench clean

deps:
	@./scripts/install-deps.sh

## The tutorial, end to end, in a real $(KERNEL) kernel.
demo: deps
	kfunc run examples/hello --kernel $(KERNEL)

## The whole suite: lint, unit, host BPF, and VM tests, on every core
## (pytest-xdist; a file's tests stay on one worker, with its fixtures; see
## tests/conftest.py). One worker more than cores: from nothing, a worker
## spends much of its time waiting on Debian's mirrors, or on another worker
## fetching the kernel it needs.
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: deps lint
	pytest -n $(WORKERS) --dist loadfile

## A kernel tree built from Debian's linux-source-6.12 (tinyconfig + what kfunc
## needs) into kfunc's cache, once, then the tests that use it (`make test`
## skips them where the tree is not built).
test-tree: deps
	python tests/kernel_tree.py
	KFUNC_REQUIRE_TREE=1 pytest tests/test_local_kernels.py -k tree

lint: deps
	ruff check src tests bench docs/gen
	ruff format --check src tests bench docs/gen
	mypy

## The docs (docs/*.md) and the API reference from the docstrings, into
## site/; any warning (a docstring citing a name that is gone) fails it.
docs: deps
	@python -c 'import mkdocstrings_handlers.python, mkdocs_gen_files, mkdocs_literate_nav' 2>/dev/null \
		|| { echo "docs: pip install -e .[docs]"; pip install -q -e '.[docs]'; }
	DISABLE_MKDOCS_2_WARNING=true mkdocs build --strict

bench: deps
	python bench/run_hello.py
	python bench/ringbuf.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
