# The two quick-start commands are `make demo` and `make test`; both set up .venv first.
VENV := .venv
BIN := $(VENV)/bin
CONTENT := ../shared/images/content/tubingen.jpg
STYLE := ../shared/images/style/vangogh_starry_night.jpg

.PHONY: setup demo weights test lint check bench bench-large bench-video clean

setup: $(BIN)/styleshift

$(BIN)/styleshift: pyproject.toml scripts/setup.sh
	scripts/setup.sh
	@touch $@

weights: setup
	$(BIN)/styleshift weights fetch

demo: weights
	@mkdir -p out
	$(BIN)/styleshift stylize $(CONTENT) $(STYLE) -o out/demo.png --overwrite

test: weights
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

bench: weights
	$(BIN)/python bench/run.py

bench-large: weights
	$(BIN)/python bench/large.py

# Flicker and speed of `styleshift video` (docs/performance.md).
bench-video: weights
	$(BIN)/python bench/video.py

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
