"""The bounce package is pure: its tests need neither the database nor Redis."""
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "bounces"


@pytest.fixture(autouse=True)
def _seeded_plans():
    """Overrides the suite-wide fixture that seeds plans in the database: nothing here uses it."""


@pytest.fixture(scope="session")
def corpus_dir():
    if not (CORPUS / "labels.tsv").is_file():
        pytest.skip(f"bounce corpus not found at {CORPUS} (expected ../shared/corpus/bounces next to the repo)")
    return CORPUS
