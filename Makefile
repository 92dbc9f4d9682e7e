# The two commands that do everything on a fresh machine:
#   make demo   install, then blend two bundled real clips, separate them with the bundled model
#   make test   install (with the web extra and a headless browser), then run the test suite
#   make serve  the web page (centrifuge serve) on http://127.0.0.1:7860/
PY := .venv/bin/python

.PHONY: install demo test serve lint bench clean

install: .venv/.installed

.venv/.installed: pyproject.toml scripts/install.sh
	./scripts/install.sh 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import centrifuge, torch, av" && touch $@

# `centrifuge serve` needs the web extra; its browser test also Playwright and a system Chromium
.venv/.web-installed: .venv/.installed pyproject.toml
	$(PY) -m pip install -q -e ".[web]" 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import starlette, uvicorn" && touch $@

.venv/.browser-installed: .venv/.web-installed scripts/install_browser.sh
	./scripts/install_browser.sh && touch $@

demo: install
	$(PY) -m centrifuge demo -o demo_out --force

test: install .venv/.browser-installed
	$(PY) -m pytest -q -n 2 -m "not engine" tests
	$(PY) -m pytest -q -n 0 -m engine tests

serve: install .venv/.web-installed
	$(PY) -m centrifuge serve $(ARGS)

lint: install
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m ruff format --check src tests bench scripts

clean:
	rm -rf .venv build *.egg-info .pytest_cache .ruff_cache
