# The two commands that do everything on a fresh machine:
#   make demo   install, then blend two bundled real clips, separate them with the bundled model
#   make test   install, then run the test suite
PY := .venv/bin/python

.PHONY: install demo test lint bench clean

install: .venv/.installed

.venv/.installed: pyproject.toml scripts/install.sh
	./scripts/install.sh 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import centrifuge, torch, av" && touch $@

demo: install
	$(PY) -m centrifuge demo -o demo_out --force

test: install
	$(PY) -m pytest -q -n 2 tests

lint: install
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m ruff format --check src tests bench scripts

clean:
	rm -rf .venv build *.egg-info .pytest_cache .ruff_cache
