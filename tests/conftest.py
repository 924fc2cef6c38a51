import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def data_root():
    """Where MovieLens lives: $FASTALS_DATA, else ../shared/data beside the repo."""
    env = os.environ.get("FASTALS_DATA")
    if env:
        return Path(env)
    return HERE.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ml100k():
    """Path of the ml-100k folder, or skip with the reason."""
    path = data_root() / "ml-100k"
    if not (path / "ua.base").is_file():
        pytest.skip(f"MovieLens-100k not found at {path} (set FASTALS_DATA to the "
                    "folder that holds ml-100k/)")
    return path
