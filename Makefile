# The two quick-start commands are `make demo` and `make test`; both set up .venv first.
VENV := .venv
BIN := $(VENV)/bin
CONTENT := ../shared/images/content/tubingen.jpg
STYLE := ../shared/images/style/vangogh_starry_night.jpg

.PHONY: setup demo weights test lint check bench bench-large bench-video bench-instant \
	bench-batch gallery train-decoders train-style-decoder clean

setup: $(BIN)/styleshift

$(BIN)/styleshift: pyproject.toml scripts/setup.sh
	scripts/setup.sh
	@touch $@

weights: setup
	$(BIN)/styleshift weights fetch

# The instant picture first (seconds), then the optimised one (minutes).
demo: weights
	@mkdir -p out
	$(BIN)/styleshift stylize $(CONTENT) $(STYLE) -o out/demo-instant.png --preset instant --overwrite
	$(BIN)/styleshift stylize $(CONTENT) $(STYLE) -o out/demo.png --overwrite

test: weights
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

check: lint test

bench: weights
	$(BIN)/python bench/run.py

bench-large: weights
	$(BIN)/python bench/large.py

# Flicker and speed of `styleshift video` (docs/performance.md).
bench-video: weights
	$(BIN)/python bench/video.py

# Speed and quality of the feed-forward method (docs/performance.md).
bench-instant: weights
	$(BIN)/python bench/instant.py speed
	$(BIN)/python bench/instant.py quality --compare 6

# Pictures per minute of `styleshift batch`, local and on Ray (docs/performance.md).
bench-batch: weights
	$(BIN)/python bench/batch.py

# The README's gallery, through `styleshift compare` (reports in out/gallery/).
gallery: weights
	$(BIN)/python scripts/gallery.py

# The shipped decoder, from data the package registries provide (docs/feedforward.md).
# The settings of the shipped decoders (docs/model-card.md); resumable: run it again after
# an interruption, and a larger step count trains further. Minutes on a GPU, days on 2 cores.
RELU4_STEPS := 6697
RELU3_STEPS := 11910
DECODER_SETTINGS := --batch-size 16 --crop 256 --photo-size 640 --precision bfloat16
training-data/manifest.json:
	$(BIN)/python scripts/training_data.py training-data

train-decoders: weights training-data/manifest.json
	@mkdir -p training-runs
	$(BIN)/styleshift train training-data/train --validation training-data/val $(DECODER_SETTINGS) \
		--level relu4_1 --steps $(RELU4_STEPS) -o training-runs/relu4_1.safetensors
	$(BIN)/styleshift train training-data/train --validation training-data/val $(DECODER_SETTINGS) \
		--level relu3_1 --steps $(RELU3_STEPS) -o training-runs/relu3_1.safetensors

# The shipped relu4_1 decoder is the one above fine-tuned to paint (docs/model-card.md):
# Huang and Belongie's objective on 3 of every 4 crops, with the paintings of
# scripts/style_corpus.py (the bench's six and ten more held out). The photos are the
# training photos without the shared paintings, so no held-out painting is seen even as a
# photo. Niced and resumable: hours on 2 cores, minutes on a GPU.
STYLE_STEPS := 1448
STYLE_PHOTOS := $(addprefix training-data/train/,gnome-backgrounds mate-backgrounds \
	plasma-workspace-wallpapers ukui-wallpapers lomiri-wallpapers-16.04 \
	lomiri-wallpapers-20.04 scikit-image sintel frames)
STYLE_SETTINGS := --styles style-data/train --style-weight 10 --stylised-share 0.75 \
	--learning-rate 1e-4 --batch-size 8 --crop 192 --validate-every 200
style-data/manifest.json:
	$(BIN)/python scripts/style_corpus.py style-data

train-style-decoder: train-decoders style-data/manifest.json
	nice $(BIN)/styleshift train $(STYLE_PHOTOS) --validation training-data/val $(STYLE_SETTINGS) \
		--start-from training-runs/relu4_1.safetensors --steps $(STYLE_STEPS) \
		-o training-runs/style-relu4_1.safetensors

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
