# sudo make run   - set up (scripts/bootstrap.sh) and run the quickstart scenario
# sudo make test  - set up and run the tests
PY := .venv/bin/python
TESTS ?= tests/unit tests/netns tests/e2e
PYTEST_ARGS ?= -q

.PHONY: run test bench clean bootstrap root

root:
	@if [ "$$(id -u)" -ne 0 ]; then echo "make: testbed needs root: run 'sudo make $(MAKECMDGOALS)'" >&2; exit 3; fi

bootstrap: root
	@scripts/bootstrap.sh

run: bootstrap
	$(PY) -m testbed run scenarios/quickstart.yaml

test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS) $(TESTS)

bench: bootstrap
	$(PY) bench/bringup.py
	$(PY) bench/podnet.py
	$(PY) bench/proxy.py

clean: root
	$(PY) -m testbed clean
