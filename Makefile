# Vigil: `make demo` starts everything on this machine; `make test` runs every test.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=
# Every target here is for a development machine (config/settings.py: development mode).
export VIGIL_ENV ?= development


.PHONY: install browser oidc services services-stop migrate demo lint test bench clean

install: .venv/.installed

.venv/.installed: requirements.txt
	@command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
	@test -x $(PY) || python3 -m venv .venv || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv .venv; }
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

# Page tests drive Debian's chromium through Playwright (Playwright cannot download browsers here).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The local OpenID Connect provider of the demo and the single sign-on tests (npm oidc-provider,
# pinned in config/oidc/package-lock.json, installed under .run/).
oidc: install
	$(PY) -m config.oidc_provider install

services: install
	$(PY) -m config.services start

services-stop:
	@test -x $(PY) && $(PY) -m config.services stop || true

migrate: services
	$(PY) manage.py migrate_tenants

demo: install oidc
	$(PY) -m config.services start
	$(PY) -m config.demo

# Lint, format and types (pyproject.toml): what CI runs before the tests.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

test: install browser oidc
	$(PY) -m config.services start --fast
	$(PY) -m pytest -c tests/pytest.ini $(PYTEST_ARGS)

bench: install
	$(PY) -m config.services start
	$(PY) bench/provision.py --quick
	$(PY) bench/steps.py --quick

clean: services-stop
	rm -rf .run staticfiles
