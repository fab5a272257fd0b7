# Vigie — two commands for a newcomer: `make demo` and `make test`.
# Both install what they need (virtualenv, Python packages, Kafka and Elasticsearch from
# Maven Central into ~/.cache/vigie) and start the local stack (deploy/local) first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
VIGIE  := $(VENV)/bin/vigie

.PHONY: install install-system demo test test-unit lint stack-up stack-down stack-status bench clean \
        agent-wheel agent-deb

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[national,dev]'
	touch $@

# Debian packages the tests start themselves (Alertmanager receives the pages in the tests).
install-system:
	@command -v prometheus-alertmanager >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-alertmanager \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus-alertmanager; }; \
	  else echo "please install prometheus-alertmanager: sudo apt-get install prometheus-alertmanager"; exit 1; fi; }

stack-up: install
	$(VIGIE) stack up

stack-down: install
	$(VIGIE) stack down

stack-status: install
	$(VIGIE) stack status

demo: stack-up
	$(VIGIE) demo

# The house plan is checked here: style (ruff), types (mypy, every ignore verified) and the
# layers of the README's architecture section (import-linter, contracts in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-unit: install
	$(PY) -m pytest -q tests/unit

test: lint install-system stack-up
	VIGIE_STACK_DRILL=1 $(PY) -m pytest -q

bench: stack-up
	$(PY) -m bench.e2e
	$(PY) -m bench.security
	$(PY) -m bench.sink

# The hospital agent's own distributions (deploy/agent): the `vigie-agent` wheel (agent code
# and its dependencies only) and a .deb installing it in /opt/vigie-agent with its systemd
# unit. Both land in dist/.
agent-wheel: install
	$(PY) -m deploy.agent.build --out dist

agent-deb: install
	$(PY) -m deploy.agent.deb --out dist

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache dist
