"""Code: `make mutate` runs its test selection in the order pyproject.toml gives, so the whole-spec test runs
first and is handed the code that runs at import and start-up (scripts/dev/mutation_report.py)."""

import subprocess
import sys
import tomllib

from conftest import REPO_ROOT


def test_the_mutation_selection_starts_with_the_whole_spec_test():
    mutmut = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    arguments = [*mutmut["pytest_add_cli_args"], *mutmut["pytest_add_cli_args_test_selection"]]
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", *arguments],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    collected = [line for line in listed if "::" in line]
    first_file = next(argument for argument in arguments if argument.startswith("tests/"))
    assert first_file == "tests/test_api_spec.py"
    assert collected[0].startswith(f"{first_file}::"), collected[:3]
